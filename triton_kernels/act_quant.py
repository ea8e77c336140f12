"""Per-token asymmetric int8 quantization of activations: the CUDA kernel of qtorch::quantize_per_token.

For each row r of x (M, K):  r_min = min(min(r), 0), r_max = max(max(r), 0),
S = (r_max - r_min) / 255 (1 if 0),  Z = clamp(rint(-128 - r_min / S), -128, 127),
q = clamp(rint(r / S) + Z, -128, 127); all fp32 with IEEE division (docs/DESIGN.md, bit-exact with qtorch.quant).
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import (
    check_2d,
    check_device,
    check_float_dtype,
    interpreting,
    quantize_rounded,
    round_half_even,
)

# Rows up to this length are held in registers whole, so x is read from memory exactly once.
SINGLE_PASS_MAX_K = 32768


@triton.jit
def _row_scale_zero_point(r_min, r_max):
    """Asymmetric int8 scale and zero point (fp32 scalars) from the row range (r_min <= 0 <= r_max)."""
    scale = tl.math.div_rn(r_max - r_min, 255.0)
    scale = tl.where(scale == 0.0, 1.0, scale)
    zero_point = round_half_even(-128.0 - tl.math.div_rn(r_min, scale))
    zero_point = tl.minimum(tl.maximum(zero_point, -128.0), 127.0)
    return scale, zero_point


@triton.jit
def _quantize_values(r, scale, zero_point):
    """q = clamp(rint(r / S) + Z, -128, 127) as int8, for an fp32 block r."""
    return quantize_rounded(tl.math.div_rn(r, scale), zero_point, -128, 127).to(tl.int8)


@triton.jit
def _quantize_per_token_kernel(
    x_ptr,  # (M, K) bf16/fp16/fp32 activations, unit stride along K
    q_ptr,  # (M, K) int8 out, contiguous
    scale_ptr,  # (M,) fp32 out
    zero_point_ptr,  # (M,) int32 out
    K,  # row length
    stride_xm,  # elements between consecutive rows of x
    BLOCK_K: tl.constexpr,  # columns per block: next power of 2 >= K when SINGLE_PASS, else a chunk size
    SINGLE_PASS: tl.constexpr,  # True: the whole row stays in registers (x read once); False: two passes over K
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    q_row = q_ptr + row * K
    cols = tl.arange(0, BLOCK_K)  # (BLOCK_K,)
    if SINGLE_PASS:
        mask = cols < K
        r = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)  # (BLOCK_K,) fp32; padding 0 keeps min/max
        scale, zero_point = _row_scale_zero_point(tl.minimum(tl.min(r, axis=0), 0.0), tl.maximum(tl.max(r, axis=0), 0.0))
        tl.store(q_row + cols, _quantize_values(r, scale, zero_point), mask=mask)
    else:
        r_min = tl.zeros((BLOCK_K,), dtype=tl.float32)  # running element-wise min, starts at 0 (the range holds 0)
        r_max = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            mask = k0 + cols < K
            r = tl.load(x_row + k0 + cols, mask=mask, other=0.0).to(tl.float32)
            r_min = tl.minimum(r_min, r)
            r_max = tl.maximum(r_max, r)
        scale, zero_point = _row_scale_zero_point(tl.min(r_min, axis=0), tl.max(r_max, axis=0))
        for k0 in range(0, K, BLOCK_K):
            mask = k0 + cols < K
            r = tl.load(x_row + k0 + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(q_row + k0 + cols, _quantize_values(r, scale, zero_point), mask=mask)
    tl.store(scale_ptr + row, scale)
    tl.store(zero_point_ptr + row, zero_point.to(tl.int32))


def quantize_per_token(x: torch.Tensor):
    """Per-row asymmetric int8 quantization of x (M, K) -> q (M, K) int8, scale (M,) fp32, zero_point (M,) int32.

    r̂ = S (q - Z) reconstructs x; bit-exact with the PyTorch reference (rules in docs/DESIGN.md).
    """
    check_2d("x", x)
    check_float_dtype("x", x)
    check_device("x", x)
    M, K = x.shape
    if K == 0:
        raise ValueError("x must have at least one column (K >= 1)")
    if x.stride(1) != 1:
        x = x.contiguous()
    q = torch.empty((M, K), dtype=torch.int8, device=x.device)  # (M, K) int8
    scale = torch.empty((M,), dtype=torch.float32, device=x.device)  # (M,) fp32
    zero_point = torch.empty((M,), dtype=torch.int32, device=x.device)  # (M,) int32
    if M == 0:
        return q, scale, zero_point
    single_pass = K <= SINGLE_PASS_MAX_K
    block_k = triton.next_power_of_2(K) if single_pass else 4096
    # ~16 fp32 values per thread when the row is in registers; chunks of 4096 use 8 warps.
    num_warps = 1 if interpreting() else max(1, min(16, block_k // 512))
    torch.library.wrap_triton(_quantize_per_token_kernel)[(M,)](
        x, q, scale, zero_point, K, x.stride(0),
        BLOCK_K=block_k, SINGLE_PASS=single_pass, num_warps=num_warps,
    )
    return q, scale, zero_point
