"""Tiled path of qtorch::weight_only_linear: dequantize a (BLOCK_K, BLOCK_N) weight tile to exact integers q − Z in
x's dtype in registers, multiply on tensor cores with tl.dot, and scale the fp32 tile result once per group (BLOCK_K
divides g). Group sizes that are no multiple of 16 (and not K) dequantize per element.

Small M (bf16/fp16 x): _wo_mma_swapped_kernel computes yᵀ = ŵ · xᵀ so that the dequantized (BLOCK_N, BLOCK_K) weight
tile is the left operand (64 rows per warpgroup, the M of wgmma) and x only the 16-64 wide right operand; split K
through an fp32 workspace and a reduction kernel (deterministic, no host synchronisation).
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import autotune, cast_rne, interpreting, small_int_to_float
from triton_kernels.splitk_reduce import reduce_splits


@triton.jit
def _wo_mma_kernel(
    x_ptr,  # (M, K) bf16/fp16/fp32 activations, unit stride along K
    w_ptr,  # (N, K/2) uint8 packed int4, or (N, K) int8; unit stride along K
    scale_ptr,  # (N, K / group_size) fp32 group scales
    zero_point_ptr,  # (N, K / group_size) int8 group zero points
    bias_ptr,  # (N,) bias (any float dtype) or a dummy pointer when HAS_BIAS is False
    y_ptr,  # (M, N) output in x's dtype
    M,  # rows of x
    N,  # output features
    K,  # input features
    group_size,  # g (divides K)
    stride_xm,  # elements between rows of x
    stride_wn,  # bytes between rows of w
    stride_sn,  # elements between rows of scale
    stride_zn,  # elements between rows of zero_point
    stride_ym,  # elements between rows of y
    BITS: tl.constexpr,  # 4 or 8
    HAS_BIAS: tl.constexpr,  # add bias
    SCALE_PER_TILE: tl.constexpr,  # True: a K tile never crosses a group (BLOCK_K divides g, or g == K)
    DOT_DTYPE: tl.constexpr,  # operand dtype of tl.dot: x's dtype (fp32 for bf16 x in the interpreter, see launcher)
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 operands (no TF32), "tf32" otherwise (ignored for 16-bit inputs)
    BLOCK_M: tl.constexpr,  # rows of x per program (>= 16 for tl.dot)
    BLOCK_N: tl.constexpr,  # output features per program
    BLOCK_K: tl.constexpr,  # k per iteration
):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m  # programs sharing a weight tile run back to back (the tile stays in L2)
    pid_n = pid // num_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    offs_k = tl.arange(0, BLOCK_K)  # (BLOCK_K,)
    m_mask = offs_m < M
    n_mask = offs_n < N
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm  # (BLOCK_M, 1)
    w_cols = w_ptr + offs_n.to(tl.int64)[None, :] * stride_wn  # (1, BLOCK_N): row n of w is column n of ŵᵀ
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k  # (BLOCK_K,)
        k_mask = k < K
        x = tl.load(x_rows + k[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0).to(DOT_DTYPE)  # (BM, BK)
        if BITS == 4:
            kb = k0 // 2 + tl.arange(0, BLOCK_K // 2)  # (BLOCK_K/2,) byte columns
            packed = tl.load(w_cols + kb[:, None], mask=(kb < K // 2)[:, None] & n_mask[None, :], other=0)
            packed = packed.to(tl.int32)  # (BLOCK_K/2, BLOCK_N), zero-extended bytes
            low = (packed << 28) >> 28  # sign-extended nibble of k = 2j
            high = (packed << 24) >> 28  # sign-extended nibble of k = 2j + 1
            q = tl.reshape(tl.permute(tl.join(low, high), (0, 2, 1)), (BLOCK_K, BLOCK_N))  # (BLOCK_K, BLOCK_N) int32
        else:
            q = tl.load(w_cols + k[:, None], mask=k_mask[:, None] & n_mask[None, :], other=0).to(tl.int32)
        if SCALE_PER_TILE:
            group = k0 // group_size
            scale = tl.load(scale_ptr + offs_n * stride_sn + group, mask=n_mask, other=0.0)  # (BLOCK_N,)
            zero_point = tl.load(zero_point_ptr + offs_n * stride_zn + group, mask=n_mask, other=0).to(tl.int32)
            w = small_int_to_float(q - zero_point[None, :]).to(DOT_DTYPE)  # exact: |q − Z| <= 255
            acc += tl.dot(x, w, input_precision=DOT_PRECISION) * scale[None, :]
        else:
            group = (k // group_size)[:, None]  # (BLOCK_K, 1)
            sz_mask = k_mask[:, None] & n_mask[None, :]
            scale = tl.load(scale_ptr + offs_n[None, :] * stride_sn + group, mask=sz_mask, other=0.0)
            zero_point = tl.load(zero_point_ptr + offs_n[None, :] * stride_zn + group, mask=sz_mask, other=0)
            w = (scale * small_int_to_float(q - zero_point.to(tl.int32))).to(DOT_DTYPE)  # (BLOCK_K, BLOCK_N)
            acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, cast_rne(acc, y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])



def _mma_configs(block_m: int):
    """Tile configurations of one M bucket (BLOCK_M fixed), the rest tuned."""
    return [triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages)
            for block_n, warps in ((32, 4), (64, 4), (128, 8)) for stages in (3, 5)]


MMA_BLOCK_MS = (16, 32, 64, 128)
# One autotuner per M bucket, keyed on the layer's shape but not on M: a new batch size tunes nothing, and no
# prune_configs_by (torch.library.wrap_triton rebuilds such autotuners, and so re-tunes, on every eager call).
_MMA_KEY = ["N", "K", "BITS", "BLOCK_K", "SCALE_PER_TILE", "DOT_DTYPE"]
_wo_mma_tuned = {
    block_m: autotune(_mma_configs(block_m), _MMA_KEY)(_wo_mma_kernel)
    for block_m in MMA_BLOCK_MS
}
# A symbolic M (torch.compile with a dynamic batch) must not pick a bucket: that would guard, and recompile, on M.
_wo_mma_any_m = autotune([c for b in MMA_BLOCK_MS for c in _mma_configs(b)], _MMA_KEY)(_wo_mma_kernel)


def _mma_kernel_for(m):
    """The autotuner of M's bucket; the one over every bucket when M is symbolic."""
    if not isinstance(m, int):
        return _wo_mma_any_m
    for block_m in MMA_BLOCK_MS:
        if m <= block_m:
            return _wo_mma_tuned[block_m]
    return _wo_mma_tuned[MMA_BLOCK_MS[-1]]


def mma_tiled(x, w_q, w_scale, w_zp, bits, group_size, bias, y):
    """Launch _wo_mma_kernel writing y (M, N): x bf16/fp16/fp32 and w_q with unit stride along K, any group size
    dividing K (qtorch.ops routes)."""
    m, k = x.shape
    n = w_q.shape[0]
    # One group per K tile when BLOCK_K divides g (or g == K); other group sizes dequantize per element.
    if group_size == k or group_size % 128 == 0:
        block_k = 128
    elif group_size in (16, 32, 64):
        block_k = group_size
    else:
        block_k = None
    scale_per_tile = block_k is not None
    block_k = block_k or 64
    # The interpreter's tl.dot multiplies the raw bits of bf16 operands, so there bf16 x is multiplied in fp32
    # (identical products: bf16 values and |q − Z| <= 255 are exact in fp32; the GPU tests cover the bf16 dot).
    dot_dtype = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}[x.dtype]
    if interpreting() and x.dtype == torch.bfloat16:
        dot_dtype = tl.float32
    precision = "ieee" if dot_dtype == tl.float32 else "tf32"
    has_bias = bias is not None
    args = (x, w_q, w_scale, w_zp, bias if has_bias else w_scale, y, m, n, k, group_size, x.stride(0), w_q.stride(0),
            w_scale.stride(0), w_zp.stride(0), y.stride(0))
    meta = dict(BITS=bits, HAS_BIAS=has_bias, SCALE_PER_TILE=scale_per_tile, DOT_DTYPE=dot_dtype,
                DOT_PRECISION=precision, BLOCK_K=block_k)
    if interpreting():
        block_m = 16
        torch.library.wrap_triton(_wo_mma_kernel)[(triton.cdiv(m, block_m) * triton.cdiv(n, 32),)](
            *args, **meta, BLOCK_M=block_m, BLOCK_N=32, num_warps=1)
    else:
        grid = lambda meta_: (triton.cdiv(m, meta_["BLOCK_M"]) * triton.cdiv(n, meta_["BLOCK_N"]),)  # noqa: E731
        torch.library.wrap_triton(_mma_kernel_for(m))[grid](*args, **meta)


# Swapped operands for small M: yᵀ = ŵ · xᵀ, the dequantized weight tile is the left (A) operand of the MMA.

SIGN_FLIP_4 = tl.constexpr(-2004318072)  # 0x88888888 as int32: flips the sign bit of every nibble (u = q + 8)
SIGN_FLIP_8 = tl.constexpr(-2139062144)  # 0x80808080 as int32: flips the sign bit of every byte (u = q + 128)
FLOAT_2P23_BITS = 0x4B000000  # bits of 2^23: (u | FLOAT_2P23_BITS) is the fp32 2^23 + u for 0 <= u < 2^23


@triton.jit
def _field_2p23(words, field_mask, magic_bits, SHIFT: tl.constexpr):
    """fp32 2^23 + u for the field u at bit SHIFT of each uint32 word: a shift and one LOP3. field_mask (2^BITS − 1)
    and magic_bits (the bits of 2^23) are runtime values: with a constant mask LLVM emits bfe.u32, which ptxas
    expands to SHF + SGXT before the OR; with register operands ptxas fuses AND and OR into one LOP3."""
    if SHIFT > 0:
        words = words >> SHIFT  # logical shift (uint32): no sign extension
    return ((words & field_mask) | magic_bits).to(tl.float32, bitcast=True)


@triton.jit
def _unpack_2p23(words, field_mask, magic_bits, BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """(BLOCK_N, BLOCK_K) fp32 2^23 + u[n, k] from (BLOCK_N, BLOCK_K * BITS / 32) sign-flipped uint32 words, field i of
    word j being k = (32 / BITS) j + i. The fields are joined so that the last axes are the bits of i, high to low."""
    if BITS == 4:
        pairs0 = tl.join(_field_2p23(words, field_mask, magic_bits, 0),
                         _field_2p23(words, field_mask, magic_bits, 16))  # (BN, BKW, 2): i = 0, 4
        pairs1 = tl.join(_field_2p23(words, field_mask, magic_bits, 4),
                         _field_2p23(words, field_mask, magic_bits, 20))  # i = 1, 5
        pairs2 = tl.join(_field_2p23(words, field_mask, magic_bits, 8),
                         _field_2p23(words, field_mask, magic_bits, 24))  # i = 2, 6
        pairs3 = tl.join(_field_2p23(words, field_mask, magic_bits, 12),
                         _field_2p23(words, field_mask, magic_bits, 28))  # i = 3, 7
        quads = tl.join(tl.join(pairs0, pairs2), tl.join(pairs1, pairs3))  # (BN, BKW, 2, 2, 2): i = 4 i2 + 2 i1 + i0
    else:
        quads = tl.join(tl.join(_field_2p23(words, field_mask, magic_bits, 0),
                                _field_2p23(words, field_mask, magic_bits, 16)),
                        tl.join(_field_2p23(words, field_mask, magic_bits, 8),
                                _field_2p23(words, field_mask, magic_bits, 24)))  # (BN, BKW, 2, 2): i = 2 i1 + i0
    return tl.reshape(quads, (BLOCK_N, BLOCK_K))


@triton.jit
def _wo_mma_swapped_kernel(
    x_ptr,  # (M, K) bf16/fp16 activations, unit stride along K
    w_ptr,  # (N, K * BITS / 32) int32: the packed weight bytes viewed as words (8 nibbles or 4 bytes, k ascending)
    scale_ptr,  # (N, K / g) fp32 group scales
    zero_point_ptr,  # (N, K / g) int8 group zero points
    bias_ptr,  # (N,) bias (any float dtype) or a dummy pointer when HAS_BIAS is False (or SPLIT_K > 1)
    out_ptr,  # SPLIT_K == 1: (M, N) output in x's dtype; else (SPLIT_K, M, N) fp32 partial sums, one slice per split
    M,  # rows of x
    N,  # output features
    K,  # input features
    field_mask,  # 2^BITS − 1 (a runtime value on purpose, see _field_2p23)
    magic_bits,  # FLOAT_2P23_BITS, the bits of 2^23 (a runtime value on purpose, see _field_2p23)
    stride_xm,  # elements between rows of x
    stride_wn,  # words between rows of w
    stride_sn,  # elements between rows of scale
    stride_zn,  # elements between rows of zero_point
    stride_om,  # elements between rows of out
    stride_os,  # elements between split slices of out (unused when SPLIT_K == 1)
    BITS: tl.constexpr,  # 4 or 8
    HAS_BIAS: tl.constexpr,  # add bias (only with SPLIT_K == 1; the reduction adds it otherwise)
    PER_CHANNEL: tl.constexpr,  # g == K: one scale per row, applied once after the K loop
    GROUP_TILES_LOG2: tl.constexpr,  # log2(g / BLOCK_K): K tiles per group (unused when PER_CHANNEL)
    EVEN_K: tl.constexpr,  # BLOCK_K divides K: no mask along K
    SPLIT_K: tl.constexpr,  # programs along K (grid axis 2), each reducing a contiguous run of K tiles
    DOT_DTYPE: tl.constexpr,  # operand dtype of tl.dot: x's dtype (fp32 for bf16 x in the interpreter, see launcher)
    BLOCK_M: tl.constexpr,  # rows of x per program: the N of the MMA (16, 32 or 64)
    BLOCK_N: tl.constexpr,  # output features per program: the M of the MMA (64 per warpgroup for wgmma)
    BLOCK_K: tl.constexpr,  # k per iteration, g / BLOCK_K a power of 2 unless PER_CHANNEL
):
    """yᵀ[n, m] = Σ_k ŵ[n, k] x[m, k] + bias[n],  ŵ[n, k] = S[n, k // g] · (q[n, k] − Z[n, k // g]).

    The (BLOCK_N, BLOCK_K) weight tile is the left operand of tl.dot, dequantized in registers to the exact integers
    q − Z in x's dtype: per field one shift and one LOP3 give the fp32 2^23 + u (u = q + 2^(BITS−1) after flipping
    the sign bits of the word), one FADD subtracts 2^23 + 2^(BITS−1) + Z, one half of a packed convert gives x's
    dtype (exact: |q − Z| <= 255). xᵀ (BLOCK_K, BLOCK_M) is the right operand. The fp32 tile result is scaled once
    per K tile (BLOCK_K divides g), or once at the end when g == K.
    """
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_k = tl.program_id(2)
    PER_WORD: tl.constexpr = 32 // BITS  # values per word
    BLOCK_KW: tl.constexpr = BLOCK_K // PER_WORD  # words per row of a K tile
    SIGN_FLIP: tl.constexpr = SIGN_FLIP_4 if BITS == 4 else SIGN_FLIP_8
    OFFSET: tl.constexpr = 8388608.0 + (1 << (BITS - 1))  # 2^23 + 2^(BITS−1): the float of u = q + 2^(BITS−1) is q
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    n_mask = offs_n < N
    m_mask = offs_m < M
    k_words = K // PER_WORD  # words per weight row
    k_tiles = tl.cdiv(K, BLOCK_K)
    tiles_per_split = tl.cdiv(k_tiles, SPLIT_K)
    tile_begin = pid_k * tiles_per_split
    tile_end = tl.minimum(tile_begin + tiles_per_split, k_tiles)
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn  # (BLOCK_N, 1)
    x_cols = x_ptr + offs_m.to(tl.int64)[None, :] * stride_xm  # (1, BLOCK_M): row m of x is column m of xᵀ
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    if PER_CHANNEL:
        offset = OFFSET + tl.load(zero_point_ptr + offs_n * stride_zn, mask=n_mask, other=0).to(tl.float32)
    for tile in range(tile_begin, tile_end):
        kw = tile * BLOCK_KW + tl.arange(0, BLOCK_KW)  # (BLOCK_KW,) word columns
        k = tile * BLOCK_K + tl.arange(0, BLOCK_K)  # (BLOCK_K,)
        if EVEN_K:
            words = tl.load(w_rows + kw[None, :], mask=n_mask[:, None], other=0)  # (BLOCK_N, BLOCK_KW) int32
            xt = tl.load(x_cols + k[:, None], mask=m_mask[None, :], other=0.0)  # (BLOCK_K, BLOCK_M)
        else:
            words = tl.load(w_rows + kw[None, :], mask=n_mask[:, None] & (kw < k_words)[None, :], other=0)
            xt = tl.load(x_cols + k[:, None], mask=(k < K)[:, None] & m_mask[None, :], other=0.0)
        words = (words ^ SIGN_FLIP).to(tl.uint32, bitcast=True)  # (BLOCK_N, BLOCK_KW) fields u = q + 2^(BITS−1)
        u = _unpack_2p23(words, field_mask, magic_bits, BITS, BLOCK_N, BLOCK_K)  # (BLOCK_N, BLOCK_K) fp32 2^23 + u
        # Masked words give q = 0, ŵ = −Z, multiplied by the zeros of xᵀ beyond K.
        if PER_CHANNEL:
            w = (u - offset[:, None]).to(DOT_DTYPE)  # (BLOCK_N, BLOCK_K) exact q − Z
            acc = tl.dot(w, xt.to(DOT_DTYPE), acc)
        else:
            group = tile >> GROUP_TILES_LOG2
            scale = tl.load(scale_ptr + offs_n * stride_sn + group, mask=n_mask, other=0.0)  # (BLOCK_N,)
            zero_point = tl.load(zero_point_ptr + offs_n * stride_zn + group, mask=n_mask, other=0)  # (BLOCK_N,)
            w = (u - (OFFSET + zero_point.to(tl.float32))[:, None]).to(DOT_DTYPE)  # (BLOCK_N, BLOCK_K) exact q − Z
            acc += tl.dot(w, xt.to(DOT_DTYPE)) * scale[:, None]
    if PER_CHANNEL:
        acc *= tl.load(scale_ptr + offs_n * stride_sn, mask=n_mask, other=0.0)[:, None]
    out_ptrs = out_ptr + offs_m.to(tl.int64)[None, :] * stride_om + offs_n[:, None]  # (BLOCK_N, BLOCK_M)
    mask = n_mask[:, None] & m_mask[None, :]
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[:, None]
        tl.store(out_ptrs, cast_rne(acc, out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(out_ptrs + pid_k.to(tl.int64) * stride_os, acc, mask=mask)


def _swapped_configs(block_m: int):
    """Tile configurations of one M bucket: BLOCK_N = 64 rows per warpgroup (the wgmma M), tuned with the pipeline."""
    return [triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages)
            for block_n, warps in ((64, 4), (128, 4), (128, 8)) for stages in (3, 5)]


SWAPPED_BLOCK_MS = (16, 32, 64)
# Keyed like _wo_mma_tuned: on the layer's shape (and split), never on M, and without prune_configs_by.
_SWAPPED_KEY = ["N", "K", "BITS", "BLOCK_K", "PER_CHANNEL", "GROUP_TILES_LOG2", "SPLIT_K", "DOT_DTYPE"]
_wo_mma_swapped_tuned = {
    block_m: autotune(_swapped_configs(block_m), _SWAPPED_KEY)(
        _wo_mma_swapped_kernel)
    for block_m in SWAPPED_BLOCK_MS
}
# Split K until about this many programs run (3 per SM of an H200: 132 SMs), counting BLOCK_N = 64 tiles: the
# kernel is issue-bound, so 172 tiles (N = 11008) on 132 SMs would leave the SMs with 2 tiles at 1.5x the mean work.
SWAPPED_TARGET_PROGRAMS = 396
SWAPPED_MAX_SPLIT_K = 4


def swapped_block_k(k: int, bits: int, group_size: int):
    """K tile of the swapped kernel: 128 when g == K, else the largest of 128/64/32/16 with g / BLOCK_K a power of 2;
    None when there is none or K * BITS is no multiple of 32 (the kernel reads int32 words)."""
    if k * bits % 32:
        return None
    if group_size == k:
        return 128
    return next((b for b in (128, 64, 32, 16) if group_size % b == 0 and (group_size // b).bit_count() == 1), None)


def swapped_split_k(n: int, k: int, block_k: int) -> int:
    """Programs along K: enough (BLOCK_N = 64) tiles to fill the GPU, at most SWAPPED_MAX_SPLIT_K, at most the
    number of K tiles. Depends on the layer shape only (a launch parameter, part of the autotuning key)."""
    return max(1, min(SWAPPED_TARGET_PROGRAMS // triton.cdiv(n, 64), SWAPPED_MAX_SPLIT_K, triton.cdiv(k, block_k)))


def mma_swapped(x, w_q, w_scale, w_zp, bits, group_size, bias, y):
    """Launch _wo_mma_swapped_kernel (and its split-K reduction) writing y (M, N); x bf16/fp16 with unit stride
    along K, w_q with unit stride along K and 4-byte aligned rows, swapped_block_k(...) not None (qtorch.ops routes)."""
    interpret = interpreting()
    m, k = x.shape
    n = w_q.shape[0]
    block_k = swapped_block_k(k, bits, group_size)
    split_k = swapped_split_k(n, k, block_k)
    words = w_q.view(torch.int32)  # (N, K * BITS / 32)
    # The deterministic split: each split writes its own fp32 slice, a second kernel sums them in order (no atomics,
    # no host synchronisation: capturable in CUDA graphs; the workspace comes from the caching allocator).
    out = y if split_k == 1 else torch.empty((split_k, m, n), dtype=torch.float32, device=x.device)
    has_bias = bias is not None and split_k == 1
    # The interpreter's tl.dot multiplies the raw bits of bf16 operands: multiply bf16 x in fp32 there (identical
    # products, the operands are exact in fp32), as the launcher does for _wo_mma_kernel.
    dot_dtype = tl.float16 if x.dtype == torch.float16 else tl.bfloat16
    if interpret and x.dtype == torch.bfloat16:
        dot_dtype = tl.float32
    args = (x, words, w_scale, w_zp, bias if has_bias else w_scale, out, m, n, k, (1 << bits) - 1, FLOAT_2P23_BITS,
            x.stride(0), words.stride(0), w_scale.stride(0), w_zp.stride(0), out.stride(-2),
            out.stride(0) if split_k > 1 else 0)
    per_channel = group_size == k
    meta = dict(BITS=bits, HAS_BIAS=has_bias, PER_CHANNEL=per_channel,
                GROUP_TILES_LOG2=0 if per_channel else (group_size // block_k).bit_length() - 1,
                EVEN_K=k % block_k == 0, SPLIT_K=split_k, DOT_DTYPE=dot_dtype, BLOCK_K=block_k)
    if interpret:
        torch.library.wrap_triton(_wo_mma_swapped_kernel)[(triton.cdiv(n, 64), triton.cdiv(m, 16), split_k)](
            *args, **meta, BLOCK_M=16, BLOCK_N=64, num_warps=4)
    else:
        # A symbolic M (forced path under torch.compile) takes the largest bucket: no guard on M.
        block_m = next((b for b in SWAPPED_BLOCK_MS if isinstance(m, int) and m <= b), SWAPPED_BLOCK_MS[-1])
        grid = lambda meta_: (triton.cdiv(n, meta_["BLOCK_N"]), triton.cdiv(m, meta_["BLOCK_M"]), split_k)  # noqa: E731
        torch.library.wrap_triton(_wo_mma_swapped_tuned[block_m])[grid](*args, **meta)
    if split_k > 1:
        reduce_splits(out, bias, y)
