"""Group quantization of weights and the weight-only linear layer that consumes it.

qtorch::group_quantize   w (N, K) float -> q, S (N, K/g) fp32, Z (N, K/g) int8, one (S, Z) per g consecutive k:
    symmetric  S = max|w| / q_max, Z = 0;  asymmetric  S = (r_max − r_min)/(q_max − q_min), Z = round(q_min − r_min/S)
    q = clamp(round(w / S) + Z, q_min, q_max), signed N-bit; int4 packed two per byte (N, K/2) uint8, int8 as (N, K).
qtorch::group_dequantize ŵ = S (q − Z) -> (N, K) in `dtype`.
qtorch::weight_only_linear  y = x · ŵᵀ + bias, ŵ dequantized in registers on CUDA; per-channel int8 is group_size = K.
The packed weight of the last two is in `layout` (qtorch.quant.layout): LAYOUT_ROWMAJOR as group_quantize makes it
(Triton kernels), or LAYOUT_TILED (the mixed-input GEMM of qtorch._C; N is then w_scale.shape[0]).
"""
import torch

from qtorch.ops._checks import ACT_DTYPES, check_bits_group, check_device, check_matrix, check_vector, packed_cols
from qtorch._ext import load_extension
from qtorch.ops._registry import triton_available, warn_once
from qtorch.quant.affine import compute_qparams, dequantize, quantize
from qtorch.quant.layout import (LAYOUT_ROWMAJOR, LAYOUT_TILED, LAYOUTS, tiled_chunk, tiled_shape, tiled_supported,
                                 unpack_tiled)
from qtorch.quant.packing import pack, unpack

# Largest M that the mixed-input GEMM dequantizes in registers; larger M dequantize the weight once and multiply with
# cuBLAS (the kernel op picks by the runtime M, so a symbolic M under torch.compile needs no guard). H200 sweep:
# benchmarks/NOTES.md "mixed-input GEMM v2" (at M = 128 dequantize + cuBLAS is as fast or faster on every shape).
MIXED_MAX_M = 64


def group_quantize_reference(w, bits, group_size, symmetric):
    scale, zp = compute_qparams(w, bits, symmetric=symmetric, granularity="group", axis=-1, group_size=group_size)
    q = quantize(w, scale, zp, bits, axis=-1, group_size=group_size)  # (N, K) int8
    return pack(q, bits), scale, zp.to(torch.int8)


def to_rowmajor(q, scale, bits, layout):
    """A packed weight in LAYOUT_ROWMAJOR (unpacking a tiled one: a full copy)."""
    return q if layout == LAYOUT_ROWMAJOR else pack(unpack_layout(q, scale, bits, layout), bits)


def unpack_layout(q, scale, bits, layout):
    """The packed weight in `layout` -> q (N, K) int8."""
    if layout == LAYOUT_ROWMAJOR:
        return unpack(q, bits)
    return unpack_tiled(q, bits, scale.shape[0], q.shape[1] // 128 * tiled_chunk(bits))


def group_dequantize_reference(q, scale, zero_point, bits, group_size, dtype, layout=LAYOUT_ROWMAJOR):
    values = unpack_layout(q, scale, bits, layout)  # (N, K) int8
    return dequantize(values, scale, zero_point.to(torch.int32), axis=-1, group_size=group_size).to(dtype)


def weight_only_linear_reference(x, w_q, w_scale, w_zp, bits, group_size, bias, layout=LAYOUT_ROWMAJOR):
    w = group_dequantize_reference(w_q, w_scale, w_zp, bits, group_size, torch.float32, layout)  # (N, K) fp32
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def _check_quantize(w, bits, group_size):
    check_matrix("w", w, ACT_DTYPES)
    check_bits_group(bits, group_size, w.shape[1])


def _check_packed(q, scale, zero_point, bits, group_size, layout=LAYOUT_ROWMAJOR):
    """q packed in `layout` (row-major: (N, K·bits/8) uint8 / int8; tiled: int32 tiled_shape(bits, N, K));
    scale (N, K/g) fp32; zero_point (N, K/g) int8. Returns K."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS} (qtorch.quant.layout), got {layout}")
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits}")
    check_matrix("w_scale", scale, (torch.float32,))
    check_matrix("w_zp", zero_point, (torch.int8,))
    if layout == LAYOUT_TILED:
        check_matrix("w_q", q, (torch.int32,))
        n, k = scale.shape[0], q.shape[1] // 128 * tiled_chunk(bits)
        if q.shape[1] % 128 or tuple(q.shape) != tiled_shape(bits, n, k) or not tiled_supported(bits, k, group_size):
            raise ValueError(f"w_q: not a tiled {bits}-bit weight for N={n} (w_scale rows) and group_size="
                             f"{group_size}: shape {tuple(q.shape)}")
    else:
        check_matrix("w_q", q, (torch.uint8,) if bits == 4 else (torch.int8,))
        n, k = q.shape[0], q.shape[1] * 8 // bits
    check_bits_group(bits, group_size, k)
    expected = (n, k // group_size)
    for name, t in (("w_scale", scale), ("w_zp", zero_point)):
        if tuple(t.shape) != expected:
            raise ValueError(f"{name}: expected shape {expected} for K={k}, group_size={group_size}, got "
                             f"{tuple(t.shape)}")
        check_device(name, t, q)
    return k


def _triton_or_warn(name: str) -> bool:
    if triton_available():
        return True
    warn_once(name, f"qtorch: triton is not installed; {name} runs the slow PyTorch reference on CUDA")
    return False


@torch.library.triton_op("qtorch::group_quantize", mutates_args=())
def group_quantize(w: torch.Tensor, bits: int, group_size: int, symmetric: bool) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor]:
    """w (N, K) -> (q (N, K·bits/8), scale (N, K/g) fp32, zero_point (N, K/g) int8)."""
    _check_quantize(w, bits, group_size)
    w = w.contiguous()
    if w.device.type == "cuda" and _triton_or_warn("group_quantize"):
        from triton_kernels.group_quant import group_quantize as launch

        return launch(w, bits, group_size, symmetric)
    return group_quantize_reference(w, bits, group_size, symmetric)


@group_quantize.register_fake
def _(w, bits, group_size, symmetric):
    _check_quantize(w, bits, group_size)
    n, k = w.shape
    q = w.new_empty((n, packed_cols(k, bits)), dtype=torch.uint8 if bits == 4 else torch.int8)
    return q, w.new_empty((n, k // group_size), dtype=torch.float32), w.new_empty((n, k // group_size),
                                                                                   dtype=torch.int8)


def _mixed_gemm_ready(name: str, dtype: torch.dtype) -> bool:
    """Whether the tiled layout's CUDA kernels serve this call (qtorch._C loaded, 16-bit activations)."""
    if load_extension() and dtype in (torch.bfloat16, torch.float16):
        return True
    warn_once(name + "_tiled", f"qtorch: {name} on a tiled weight without qtorch._C's mixed-input GEMM (or with "
                               f"{dtype} activations) unpacks the weight on every call (slow); build qtorch with nvcc "
                               "and use bfloat16/float16 activations")
    return False


@torch.library.triton_op("qtorch::group_dequantize", mutates_args=())
def group_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, group_size: int,
                     dtype: torch.dtype, layout: int = 0) -> torch.Tensor:
    """ŵ = S (q − Z) -> (N, K) in dtype."""
    k = _check_packed(q, scale, zero_point, bits, group_size, layout)
    if q.device.type == "cuda" and layout == LAYOUT_TILED and _mixed_gemm_ready("group_dequantize", dtype):
        return torch.ops.qtorch._dequant_tiled_cuda(q, scale.contiguous(), zero_point.contiguous(), bits, group_size,
                                                    k, dtype)
    q = to_rowmajor(q, scale, bits, layout)
    if q.device.type == "cuda" and _triton_or_warn("group_dequantize"):
        from triton_kernels.group_quant import group_dequantize as launch

        return launch(q.contiguous(), scale.contiguous(), zero_point.contiguous(), bits, group_size, dtype)
    return group_dequantize_reference(q, scale, zero_point, bits, group_size, dtype)


@group_dequantize.register_fake
def _(q, scale, zero_point, bits, group_size, dtype, layout=0):
    k = _check_packed(q, scale, zero_point, bits, group_size, layout)
    return q.new_empty((scale.shape[0], k), dtype=dtype)


def _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
    k = _check_packed(w_q, w_scale, w_zp, bits, group_size, layout)
    check_matrix("x", x, ACT_DTYPES, cols=k)
    check_device("w_q", w_q, x)
    check_vector("bias", bias, w_scale.shape[0], ACT_DTYPES, x)


@torch.library.triton_op("qtorch::weight_only_linear", mutates_args=())
def weight_only_linear(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, w_zp: torch.Tensor, bits: int,
                       group_size: int, bias: torch.Tensor | None, layout: int = 0) -> torch.Tensor:
    """y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias, in x's dtype."""
    _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout)
    if x.device.type == "cuda" and layout == LAYOUT_TILED and _mixed_gemm_ready("weight_only_linear", x.dtype):
        return torch.ops.qtorch._mixed_gemm_cuda(x, w_q, w_scale, w_zp, bits, group_size, bias, MIXED_MAX_M)
    w_q = to_rowmajor(w_q, w_scale, bits, layout)
    if x.device.type == "cuda" and _triton_or_warn("weight_only_linear"):
        from triton_kernels.weight_only import weight_only_linear as launch

        return launch(x.contiguous(), w_q, w_scale, w_zp, bits, group_size, bias)
    return weight_only_linear_reference(x, w_q, w_scale, w_zp, bits, group_size, bias)


@weight_only_linear.register_fake
def _(x, w_q, w_scale, w_zp, bits, group_size, bias, layout=0):
    _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout)
    return x.new_empty((x.shape[0], w_scale.shape[0]))
