"""W8A8 dynamic: int8 weights per output channel (symmetric, Z_W = 0) × int8 activations per token (asymmetric,
quantized at run time).

  q_X, S_X[m], Z_X[m] = quantize_per_token(x)
  y[m, n] = S_X[m] S_W[n] (Σ_k q_X[m, k] q_W[n, k] − Z_X[m] Σ_k q_W[n, k]) + b[n]
The course's Z_W = 0 form: the weight-side term Σ_k q_W[n, k] (w_colsum) is precomputed once here.
"""
import torch

import qtorch.ops as qops
from qtorch.ops.autograd import straight_through
from qtorch.config import W8A8DynamicConfig
from qtorch.nn.base import INT_DTYPES, QuantLinear, check_quantized, has_values
from qtorch.quant.affine import compute_qparams, dequantize, quantize
from qtorch.quant.integer_linear import MAX_K


def check_int8_shape(in_features: int) -> None:
    if in_features > MAX_K:
        raise ValueError(f"in_features: {in_features} exceeds {MAX_K}, beyond which the int32 accumulators of the "
                         "int8 GEMM can overflow")


def quantize_int8_per_channel(weight: torch.Tensor) -> dict:
    """S_W[n] = max_k |w[n, k]| / 127, q_W = clamp(round(w / S_W), −128, 127) -> {q (N, K) int8, scale (N,) fp32}."""
    scale, zero_point = compute_qparams(weight, 8, symmetric=True, granularity="channel", axis=0)  # (N, 1) each
    return {"q": quantize(weight, scale, zero_point, 8), "scale": scale.reshape(-1)}


def int8_weight_buffers(q: torch.Tensor, scale: torch.Tensor) -> dict:
    """Check a per-channel int8 weight and precompute its column sums Σ_k q_W[n, k]."""
    if not isinstance(q, torch.Tensor) or q.dim() != 2:
        raise ValueError(f"q: expected a 2-D (out_features, in_features) integer tensor, got "
                         f"{getattr(q, 'shape', type(q).__name__)}")
    check_quantized("q", q, tuple(q.shape), INT_DTYPES)
    check_quantized("scale", scale, (q.shape[0],), (torch.float32,))
    if has_values(q):
        if q.numel() and (int(q.min()) < -128 or int(q.max()) > 127):
            raise ValueError("q: values must lie in [-128, 127] for int8 weights")
        if not bool((scale > 0).all() & torch.isfinite(scale).all()):
            raise ValueError("scale: expected finite per-channel scales > 0")
    check_int8_shape(q.shape[1])
    q = q.to(torch.int8)
    return {"w_q": q.contiguous(),  # (N, K) int8
            "w_scale": scale.contiguous(),  # (N,) fp32 S_W
            "w_colsum": q.sum(dim=1, dtype=torch.int32)}  # (N,) int32 Σ_k q_W


def dequantize_int8_per_channel(w_q: torch.Tensor, w_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    zero = torch.zeros(1, 1, dtype=torch.int32, device=w_q.device)
    return dequantize(w_q, w_scale[:, None], zero).to(dtype)  # (N, K) S_W q_W


class W8A8Linear(QuantLinear):
    """Dynamic W8A8: per-token activation quantization then the int8 GEMM with the zero-point epilogue."""

    configs = (W8A8DynamicConfig,)

    @classmethod
    def check_shape(cls, config, in_features, out_features):
        check_int8_shape(in_features)

    @classmethod
    def quantize_weight(cls, weight, config):
        return quantize_int8_per_channel(weight)

    @classmethod
    def build(cls, config, bias, weight_dtype, *, q, scale):
        """q (N, K) integers in [-128, 127], scale (N,) fp32 > 0."""
        buffers = int8_weight_buffers(q, scale)
        return cls(config, q.shape[1], q.shape[0], buffers, bias, weight_dtype)

    def linear_2d(self, x):
        # (M, K) int8, (M,) fp32, (M,) int32; x's gradient is straight_through's, not the rounding's
        x_q, x_scale, x_zp = qops.quantize_per_token(x.detach())
        y = qops.int8_scaled_mm(x_q, x_scale, x_zp, self.w_q, self.w_scale, self.w_colsum, None, self.bias,
                                x.dtype)  # (M, N)
        return straight_through(x, y, self.w_q, self.w_scale)

    def dequantize_weight(self, dtype=torch.float32):
        return dequantize_int8_per_channel(self.w_q, self.w_scale, dtype)
