"""Weight-only quantized linear layer, dequantizing in registers: the launcher of qtorch::weight_only_linear's kernels.

y (M, N) = x (M, K) · ŵᵀ + bias,  ŵ[n, k] = S[n, k // g] · (q[n, k] − Z[n, k // g]),
with q signed int4 packed two per byte ((N, K/2) uint8, low nibble = even k) or int8 ((N, K)), S (N, K/g) fp32 and
Z (N, K/g) int8 exactly as group_quantize produces them (per-channel int8: g = K). Output in x's dtype.

Three kernels, all reading the canonical layout with 16-byte loads along K (no repacking needed), chosen by M
(limits measured on the H200, benchmarks/NOTES.md):
- weight_only_gemv (decode, M <= GEMV_MAX_M, bf16/fp16 x): CUDA-core FMAs, K split over programs (fp32 slices
  summed in order by splitk_reduce);
- weight_only_mma's swapped kernel (M <= SWAPPED_MAX_M, bf16/fp16 x): the dequantized weights are the left tl.dot
  operand (the 64-row wgmma side), x the narrow right one;
- weight_only_mma's tiled kernel (larger M, fp32 x, any group size): tiles dequantized in registers, x on the left;
- from DEQUANT_MIN_M (prefill): the weight dequantized once (group_dequantize, any group size) and cuBLAS.
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import check_2d, check_device, check_float_dtype, interpreting
from triton_kernels.group_quant import group_dequantize
from triton_kernels.weight_only_gemv import _gemv_group_words_log2, gemv
from triton_kernels.weight_only_mma import _mma_kernel_for, _wo_mma_kernel, mma_swapped, swapped_block_k

# Largest M served by the CUDA-core GEMV kernel; larger M (and fp32 x) use the tensor-core kernel.
GEMV_MAX_M = 1
# Largest M served by the swapped tensor-core kernel (weights as the left tl.dot operand) in "auto".
SWAPPED_MAX_M = 64
# From this M on (prefill), "auto" dequantizes the weight once to x's dtype and multiplies with cuBLAS: the tiled
# kernel measured 0.27-0.35x bf16 at M = 2048 (whole model) and 0.30x at M = 128, while dequantizing costs about one
# pass over the bf16 weight (90 MB at 4096 x 11008: ~25-60 us) next to a GEMM of 100+ us at these M.
DEQUANT_MIN_M = 256


def _check_inputs(x, w_q, w_scale, w_zp, bits, group_size, bias):
    """Metadata-only checks (no device synchronisation); returns (M, N, K)."""
    check_2d("x", x)
    check_float_dtype("x", x)
    check_device("x", x)
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    expected_q = torch.uint8 if bits == 4 else torch.int8
    if w_q.dtype != expected_q or w_q.dim() != 2:
        raise TypeError(f"w_q must be a 2-D {expected_q} tensor for bits={bits}, got {w_q.dtype} {tuple(w_q.shape)}")
    m, k = x.shape
    n = w_q.shape[0]
    if w_q.shape[1] * 8 // bits != k:
        raise ValueError(f"w_q has {w_q.shape[1]} columns, expected K*bits/8 = {k * bits // 8} for x with K={k}")
    if group_size <= 0 or k % group_size:
        raise ValueError(f"group_size must be a positive divisor of K={k}, got {group_size}")
    groups = (n, k // group_size)
    if tuple(w_scale.shape) != groups or w_scale.dtype != torch.float32:
        raise ValueError(f"w_scale must be float32 of shape {groups}, got {w_scale.dtype} {tuple(w_scale.shape)}")
    if tuple(w_zp.shape) != groups or w_zp.dtype != torch.int8:
        raise ValueError(f"w_zp must be int8 of shape {groups}, got {w_zp.dtype} {tuple(w_zp.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")
    for name, t in (("w_q", w_q), ("w_scale", w_scale), ("w_zp", w_zp), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on {x.device} like x, got {t.device}")
    return m, n, k


def _linear_dequantized(x, w_q, w_scale, w_zp, bits: int, group_size: int, bias) -> torch.Tensor:
    """The prefill path: y = F.linear(x, ŵ in x's dtype, bias) — cuBLAS on a once-dequantized weight."""
    w = group_dequantize(w_q, w_scale, w_zp, bits, group_size, x.dtype)  # (N, K) S (q − Z) rounded once to x's dtype
    return torch.nn.functional.linear(x, w, bias.to(x.dtype) if bias is not None else None)


def weight_only_linear(x, w_q, w_scale, w_zp, bits: int, group_size: int, bias=None, *, path: str = "auto"):
    """y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias in x's dtype, dequantizing the int4/int8 weight in registers.

    w_q, w_scale, w_zp as produced by group_quantize (per-channel int8: group_size = K). `path` ("auto", "gemv",
    "mma_swapped", "mma", "dequant") forces a kernel for benchmarks and tests; "auto" picks the GEMV kernel for
    M <= GEMV_MAX_M, the swapped tl.dot kernel up to SWAPPED_MAX_M (bf16/fp16 x, see swapped_block_k), the tiled
    kernel below DEQUANT_MIN_M, and a dequantized weight with cuBLAS from there (an integer M only: a symbolic M
    under torch.compile always takes the tiled kernel).
    """
    m, n, k = _check_inputs(x, w_q, w_scale, w_zp, bits, group_size, bias)
    if m == 0 or n == 0 or k == 0:
        y = torch.zeros((m, n), dtype=x.dtype, device=x.device)
        return y if bias is None or m == 0 else y.copy_(bias.expand(m, n))
    if path == "dequant" or (path == "auto" and isinstance(m, int) and m >= DEQUANT_MIN_M):
        return _linear_dequantized(x, w_q, w_scale, w_zp, bits, group_size, bias)
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if x.stride(1) != 1:
        x = x.contiguous()
    if w_q.stride(1) != 1:
        w_q = w_q.contiguous()
    has_bias = bias is not None
    bias_arg = bias if has_bias else w_scale  # never read when HAS_BIAS is False
    group_words_log2 = _gemv_group_words_log2(k, bits, group_size)
    # GEMV and the swapped kernel read int32 words: 16-bit x and 4-byte aligned weight rows (metadata only: this also
    # runs on fake tensors under torch.compile).
    words_ok = x.dtype != torch.float32 and w_q.storage_offset() % 4 == 0 and w_q.stride(0) % 4 == 0
    gemv_ok = words_ok and group_words_log2 is not None
    use_gemv = path == "gemv" or (path == "auto" and isinstance(m, int) and m <= GEMV_MAX_M)
    if path == "gemv" and not gemv_ok:
        raise ValueError("path='gemv' needs bf16/fp16 x, K a multiple of 32/bits, 4-byte aligned rows, and a "
                         "power-of-2 group size of at least 128/bits values (or group_size == K)")
    if use_gemv and gemv_ok:
        gemv(x, w_q.view(torch.int32), w_scale, w_zp, bits, group_words_log2, bias, y, interpreting())
        return y

    swapped_ok = words_ok and swapped_block_k(k, bits, group_size) is not None
    if path == "mma_swapped" and not swapped_ok:
        raise ValueError("path='mma_swapped' needs bf16/fp16 x, K*bits a multiple of 32, 4-byte aligned rows, and "
                         "a group size that is a power of 2 times 16, 32, 64 or 128 (or group_size == K)")
    if swapped_ok and (path == "mma_swapped" or (path == "auto" and isinstance(m, int)
                                                 and GEMV_MAX_M < m <= SWAPPED_MAX_M)):
        mma_swapped(x, w_q, w_scale, w_zp, bits, group_size, bias, y, interpreting())
        return y

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
    args = (x, w_q, w_scale, w_zp, bias_arg, y, m, n, k, group_size, x.stride(0), w_q.stride(0),
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
    return y
