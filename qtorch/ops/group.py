"""Group quantization of weights and the weight-only linear layer that consumes it.

qtorch::group_quantize   w (N, K) float -> q, S (N, K/g) fp32, Z (N, K/g) int8, one (S, Z) per g consecutive k:
    symmetric  S = max|w| / q_max, Z = 0;  asymmetric  S = (r_max − r_min)/(q_max − q_min), Z = round(q_min − r_min/S)
    q = clamp(round(w / S) + Z, q_min, q_max), signed N-bit; int4 packed two per byte (N, K/2) uint8, int8 as (N, K).
qtorch::group_dequantize ŵ = S (q − Z) -> (N, K) in `dtype`.
qtorch::weight_only_linear  y = x · ŵᵀ + bias, ŵ dequantized in registers on CUDA (triton_kernels.weight_only);
    per-channel int8 is group_size = K.
"""
import torch

from qtorch.ops._checks import ACT_DTYPES, check_bits_group, check_device, check_matrix, check_vector, packed_cols
from qtorch.ops._registry import triton_available, warn_once
from qtorch.quant.affine import compute_qparams, dequantize, quantize
from qtorch.quant.packing import pack, unpack


def group_quantize_reference(w, bits, group_size, symmetric):
    scale, zp = compute_qparams(w, bits, symmetric=symmetric, granularity="group", axis=-1, group_size=group_size)
    q = quantize(w, scale, zp, bits, axis=-1, group_size=group_size)  # (N, K) int8
    return pack(q, bits), scale, zp.to(torch.int8)


def group_dequantize_reference(q, scale, zero_point, bits, group_size, dtype):
    values = unpack(q, bits)  # (N, K) int8
    return dequantize(values, scale, zero_point.to(torch.int32), axis=-1, group_size=group_size).to(dtype)


def weight_only_linear_reference(x, w_q, w_scale, w_zp, bits, group_size, bias):
    w = group_dequantize_reference(w_q, w_scale, w_zp, bits, group_size, torch.float32)  # (N, K) fp32
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def _check_quantize(w, bits, group_size):
    check_matrix("w", w, ACT_DTYPES)
    check_bits_group(bits, group_size, w.shape[1])


def _check_packed(q, scale, zero_point, bits, group_size):
    """q (N, K·bits/8) packed; scale (N, K/g) fp32; zero_point (N, K/g) int8. Returns K."""
    check_matrix("w_q", q, (torch.uint8,) if bits == 4 else (torch.int8,))
    check_matrix("w_scale", scale, (torch.float32,))
    check_matrix("w_zp", zero_point, (torch.int8,))
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits}")
    k = q.shape[1] * 8 // bits
    check_bits_group(bits, group_size, k)
    expected = (q.shape[0], k // group_size)
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


@torch.library.triton_op("qtorch::group_dequantize", mutates_args=())
def group_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, group_size: int,
                     dtype: torch.dtype) -> torch.Tensor:
    """ŵ = S (q − Z) -> (N, K) in dtype."""
    _check_packed(q, scale, zero_point, bits, group_size)
    if q.device.type == "cuda" and _triton_or_warn("group_dequantize"):
        from triton_kernels.group_quant import group_dequantize as launch

        return launch(q.contiguous(), scale.contiguous(), zero_point.contiguous(), bits, group_size, dtype)
    return group_dequantize_reference(q, scale, zero_point, bits, group_size, dtype)


@group_dequantize.register_fake
def _(q, scale, zero_point, bits, group_size, dtype):
    k = _check_packed(q, scale, zero_point, bits, group_size)
    return q.new_empty((q.shape[0], k), dtype=dtype)


def _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias):
    k = _check_packed(w_q, w_scale, w_zp, bits, group_size)
    check_matrix("x", x, ACT_DTYPES, cols=k)
    check_device("w_q", w_q, x)
    check_vector("bias", bias, w_q.shape[0], ACT_DTYPES, x)


@torch.library.triton_op("qtorch::weight_only_linear", mutates_args=())
def weight_only_linear(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, w_zp: torch.Tensor, bits: int,
                       group_size: int, bias: torch.Tensor | None) -> torch.Tensor:
    """y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias, in x's dtype."""
    _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias)
    if x.device.type == "cuda" and _triton_or_warn("weight_only_linear"):
        from triton_kernels.weight_only import weight_only_linear as launch

        return launch(x.contiguous(), w_q, w_scale, w_zp, bits, group_size, bias)
    return weight_only_linear_reference(x, w_q, w_scale, w_zp, bits, group_size, bias)


@weight_only_linear.register_fake
def _(x, w_q, w_scale, w_zp, bits, group_size, bias):
    _check_linear(x, w_q, w_scale, w_zp, bits, group_size, bias)
    return x.new_empty((x.shape[0], w_q.shape[0]))
