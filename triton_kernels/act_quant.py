"""Per-token asymmetric int8 quantization of activations: the CUDA kernel of qtorch::quantize_per_token.

For each row r of x (M, K):  r_min = min(min(r), 0), r_max = max(max(r), 0),
S = (r_max - r_min) / 255 (1 if 0),  Z = clamp(rint(-128 - r_min / S), -128, 127),
q = clamp(rint(r / S) + Z, -128, 127); all fp32 with IEEE division (docs/DESIGN.md, bit-exact with qtorch.quant).

A program quantizes ROWS rows held in registers as a (ROWS, CHUNKS, SPAN) tile: each warp group of ROW_WARPS warps
owns whole rows, so the min/max reductions never leave those warps, and every thread moves 16 contiguous bytes per
load. On the GPU r / S is computed from the row's correctly rounded reciprocal with two Markstein steps (3 FMA-class
instructions instead of a div.rn.f32 per element; see _div_rn_by_row).
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import (
    autotune,
    interpreting,
    quantize_rounded,
    round_half_even,
)

# Rows up to this length are held in registers whole, so x is read from memory exactly once; longer rows are read
# twice in chunks of TWO_PASS_BLOCK_K columns (min/max pass, then the quantize pass).
SINGLE_PASS_MAX_K = 16384
TWO_PASS_BLOCK_K = 4096
# Rows per program under TRITON_INTERPRET=1 (no autotuning there).
INTERPRET_ROWS = 4
# Scales inside [2^-64, 2^64] keep every intermediate of _div_rn_by_row normal for quotients |r / S| >= 1/4.
FAST_DIV_MIN_SCALE = tl.constexpr(5.421010862427522e-20)
FAST_DIV_MAX_SCALE = tl.constexpr(1.8446744073709552e19)


@triton.constexpr_function
def _rows(tile, block_k):
    """Rows per program: TILE elements per program, at least one row."""
    return max(tile // block_k, 1)


@triton.constexpr_function
def _span(block_k, rows, warps):
    """Columns covered by one warp group of ROW_WARPS = warps / min(warps, rows) warps: 16 per thread (the int8 store
    is 16 bytes wide, and Triton gives the loads the stores' layout)."""
    return min(block_k, 16 * 32 * (warps // min(warps, rows)))


@triton.jit
def _min_max(a_min, a_max, b_min, b_max):
    """Element-wise min and max that keep NaN (the GPU's default min/max drop it): a NaN in a row makes its scale NaN,
    so the row comes out NaN, as in the reference (torch.aminmax propagates NaN)."""
    return (tl.minimum(a_min, b_min, propagate_nan=tl.PropagateNan.ALL),
            tl.maximum(a_max, b_max, propagate_nan=tl.PropagateNan.ALL))


@triton.jit
def _per_row(v):
    """(ROWS,) -> (ROWS, 1, 1): SPAN re-expanded before CHUNKS, the reverse of the reductions, so the broadcast
    needs no layout conversion."""
    return tl.expand_dims(tl.expand_dims(v, 1), 1)


@triton.jit
def _row_scale_zero_point(r_min, r_max):
    """Asymmetric int8 scale and zero point (fp32, (ROWS,)) from the row range (r_min <= 0 <= r_max)."""
    scale = tl.math.div_rn(r_max - r_min, 255.0)
    scale = tl.where(scale == 0.0, 1.0, scale)
    zero_point = round_half_even(-128.0 - tl.math.div_rn(r_min, scale))
    zero_point = tl.minimum(tl.maximum(zero_point, -128.0), 127.0)
    return scale, zero_point


@triton.jit
def _div_rn_by_row(r, scale, recip):
    """RN(r / S) for fp32 r and S, given recip = RN(1 / S) (relative error < 2^-24).

    q0 = RN(r * recip) is within 1.5 ulp of r / S; one Markstein step q + RN(r - S q) * recip makes it faithful
    (error < 2^-22 ulp before rounding), and a second one rounds correctly (Markstein's theorem: y with relative
    error < 2^-p and q faithful give RN(q + (r - S q) y) = RN(r / S), the residual being exact in one FMA).
    Requires no underflow: holds when S is in [FAST_DIV_MIN_SCALE, FAST_DIV_MAX_SCALE] and |r / S| >= 1/4;
    smaller quotients come out below 1/2 in magnitude either way, so rint gives 0 like the exact quotient."""
    q = r * recip
    q = tl.fma(tl.fma(-scale, q, r), recip, q)
    return tl.fma(tl.fma(-scale, q, r), recip, q)


@triton.jit
def _quantize_tile(r, scale, zero_point, FAST_DIV: tl.constexpr):
    """q = clamp(rint(r / S) + Z, -128, 127) as int8 for a (ROWS, CHUNKS, SPAN) fp32 tile; S, Z are (ROWS,) fp32."""
    scale_b = _per_row(scale)  # (ROWS, 1, 1) fp32
    if FAST_DIV:
        safe = (scale >= FAST_DIV_MIN_SCALE) & (scale <= FAST_DIV_MAX_SCALE)  # (ROWS,); False for inf / NaN scales
        if tl.min(safe.to(tl.int32), axis=0) == 1:
            recip = tl.math.div_rn(1.0, scale)  # (ROWS,) fp32 RN(1 / S)
            quotient = _div_rn_by_row(r, scale_b, _per_row(recip))
        else:
            quotient = tl.math.div_rn(r, scale_b)
    else:
        quotient = tl.math.div_rn(r, scale_b)
    return quantize_rounded(quotient, _per_row(zero_point), -128, 127).to(tl.int8)


@triton.jit
def _quantize_per_token_kernel(
    x_ptr,  # (M, K) bf16/fp16/fp32 activations, unit stride along K
    q_ptr,  # (M, K) int8 out, contiguous
    scale_ptr,  # (M,) fp32 out
    zero_point_ptr,  # (M,) int32 out
    M,  # rows
    K,  # row length
    stride_xm,  # elements between consecutive rows of x
    BLOCK_K: tl.constexpr,  # columns per tile: next power of 2 >= K when SINGLE_PASS, else TWO_PASS_BLOCK_K
    SINGLE_PASS: tl.constexpr,  # True: the whole row stays in registers (x read once); False: two passes over K
    TILE: tl.constexpr,  # elements per program: ROWS = max(TILE // BLOCK_K, 1) rows
    WARPS: tl.constexpr,  # = num_warps; warps along rows = min(WARPS, ROWS), the others share a row (ROW_WARPS)
    FAST_DIV: tl.constexpr,  # r / S through the row reciprocal and FMAs (GPU); False: div_rn per element (interpreter)
):
    ROWS: tl.constexpr = _rows(TILE, BLOCK_K)
    SPAN: tl.constexpr = _span(BLOCK_K, ROWS, WARPS)
    CHUNKS: tl.constexpr = BLOCK_K // SPAN
    # Dimension order (ROWS, CHUNKS, SPAN): Triton's blocked layout gives the 32 lanes and ROW_WARPS warps to SPAN
    # (the contiguous dimension), the remaining warps to ROWS, and repeats CHUNKS inside each thread.
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)  # (ROWS,) int64
    row_mask = rows < M
    x_rows = (x_ptr + rows * stride_xm)[:, None, None]  # (ROWS, 1, 1) row starts
    q_rows = (q_ptr + rows * K)[:, None, None]  # (ROWS, 1, 1)
    cols = tl.arange(0, CHUNKS)[None, :, None] * SPAN + tl.arange(0, SPAN)[None, None, :]  # (1, CHUNKS, SPAN)
    if SINGLE_PASS:
        mask = (cols < K) & row_mask[:, None, None]  # (ROWS, CHUNKS, SPAN)
        r = tl.load(x_rows + cols, mask=mask, other=0.0).to(tl.float32)  # (ROWS, CHUNKS, SPAN) fp32; 0 pads keep min/max
        r_min, r_max = tl.reduce((r, r), 1, _min_max)  # (ROWS, SPAN) fp32, inside each thread
        r_min, r_max = tl.reduce((r_min, r_max), 1, _min_max)  # (ROWS,) fp32, across the lanes / ROW_WARPS warps
        scale, zero_point = _row_scale_zero_point(*_min_max(r_min, r_max, 0.0, 0.0))
        tl.store(q_rows + cols, _quantize_tile(r, scale, zero_point, FAST_DIV), mask=mask)
    else:
        r_min = tl.zeros((ROWS, CHUNKS, SPAN), dtype=tl.float32)  # running element-wise min, starts at 0 (range holds 0)
        r_max = tl.zeros((ROWS, CHUNKS, SPAN), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            mask = (k0 + cols < K) & row_mask[:, None, None]
            r = tl.load(x_rows + k0 + cols, mask=mask, other=0.0).to(tl.float32)  # (ROWS, CHUNKS, SPAN) fp32
            r_min, r_max = _min_max(r_min, r_max, r, r)
        r_min, r_max = tl.reduce((r_min, r_max), 1, _min_max)  # (ROWS, SPAN) fp32
        r_min, r_max = tl.reduce((r_min, r_max), 1, _min_max)  # (ROWS,) fp32
        scale, zero_point = _row_scale_zero_point(r_min, r_max)
        for k0 in range(0, K, BLOCK_K):
            mask = (k0 + cols < K) & row_mask[:, None, None]
            r = tl.load(x_rows + k0 + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(q_rows + k0 + cols, _quantize_tile(r, scale, zero_point, FAST_DIV), mask=mask)
    tl.store(scale_ptr + rows, scale, mask=row_mask)
    tl.store(zero_point_ptr + rows, zero_point.to(tl.int32), mask=row_mask)


def _configs():
    """(TILE elements per program, warps). Rows of 4096: E = TILE / (32 warps) = 16-128 elements per thread, one to
    eight rows per program, one to eight warps per row (TILE 16384 / 4 warps: one warp per row, fully warp-local).
    Rows of 8192-16384 get one or two rows per program and more warps per row from the same list."""
    return [triton.Config({"TILE": tile, "WARPS": warps}, num_warps=warps)
            for tile, warps in ((4096, 4), (4096, 8), (8192, 4), (8192, 8), (16384, 4), (16384, 8), (16384, 16),
                                (32768, 16))]


# Keyed on K (the autotuner adds the dtypes of the tensor arguments), not on M: a new batch size tunes nothing.
_quantize_per_token_tuned = autotune(_configs(), ["K"])(_quantize_per_token_kernel)


def quantize_per_token(x: torch.Tensor):
    """Per-row asymmetric int8 quantization of x (M, K) -> q (M, K) int8, scale (M,) fp32, zero_point (M,) int32.

    r̂ = S (q - Z) reconstructs x; bit-exact with the PyTorch reference (rules in docs/DESIGN.md). The arguments are
    those qtorch::quantize_per_token's check accepted (x 2-D, K >= 1, a float dtype).
    """
    M, K = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    q = torch.empty((M, K), dtype=torch.int8, device=x.device)  # (M, K) int8
    scale = torch.empty((M,), dtype=torch.float32, device=x.device)  # (M,) fp32
    zero_point = torch.empty((M,), dtype=torch.int32, device=x.device)  # (M,) int32
    if M == 0:
        return q, scale, zero_point
    single_pass = K <= SINGLE_PASS_MAX_K
    block_k = triton.next_power_of_2(K) if single_pass else TWO_PASS_BLOCK_K
    args = (x, q, scale, zero_point, M, K, x.stride(0))
    if interpreting():
        # The interpreter's tl.fma rounds twice (numpy multiply, then add), so it divides with div_rn.
        torch.library.wrap_triton(_quantize_per_token_kernel)[(triton.cdiv(M, INTERPRET_ROWS),)](
            *args, BLOCK_K=block_k, SINGLE_PASS=single_pass, TILE=INTERPRET_ROWS * block_k, WARPS=1,
            FAST_DIV=False, num_warps=1,
        )
    else:
        grid = lambda meta: (triton.cdiv(M, _rows(meta["TILE"], meta["BLOCK_K"])),)  # noqa: E731
        torch.library.wrap_triton(_quantize_per_token_tuned)[grid](
            *args, BLOCK_K=block_k, SINGLE_PASS=single_pass, FAST_DIV=True,
        )
    return q, scale, zero_point
