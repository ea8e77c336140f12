"""Integer-only linear layer (Jacob et al. 2018, arXiv:1712.05877: integer-arithmetic-only inference), reference in int32 arithmetic.

  q_Y = M · (Σ_k q_W q_X − Z_W Σ_k q_X − Z_X Σ_k q_W + K·Z_W·Z_X) + Z_Y,      M = S_W S_X / S_Y = M0 · 2^-31 · 2^-n

The weight-side terms (−Z_X Σ_k q_W + K Z_W Z_X, plus a bias quantized to int32 at scale S_W S_X) are precomputed
once in `prepare_integer_linear`; per input only Σ q_W q_X (an int32 matmul) and, when Z_W ≠ 0, Z_W Σ_k q_X remain.
Weights are per-channel (one S_W, Z_W, M0, n per output row) or per-tensor; activations and outputs per-tensor.
"""
from dataclasses import dataclass

import torch

from qtorch.quant._validate import check_dtype, check_finite, check_float, check_ndim
from qtorch.quant.affine import compute_qparams, quantize
from qtorch.quant.fixed_point import INT32_MAX, INT32_MIN, quantize_multiplier, requantize

MAX_K = 1 << 15  # |partial sums| ≤ 4 · 2^14 · K must stay below 2^31


@dataclass
class IntegerLinear:
    """Everything the integer-only layer needs, computed once at quantize time."""

    w_q: torch.Tensor  # (N, K) int8
    w_zp: torch.Tensor  # (N,) int32 Z_W
    w_colsum: torch.Tensor  # (N,) int32 Σ_k q_W
    bias_q: torch.Tensor | None  # (N,) int32, bias / (S_W S_X) rounded
    const: torch.Tensor  # (N,) int32 −Z_X Σ_k q_W + K Z_W Z_X + bias_q
    multiplier: torch.Tensor  # (N,) int32 M0
    shift: torch.Tensor  # (N,) int32 n
    x_zp: int  # Z_X
    y_zp: int  # Z_Y
    w_scale: torch.Tensor  # (N,) fp32 S_W (kept for float comparisons)
    x_scale: float  # S_X
    y_scale: float  # S_Y


def prepare_integer_linear(weight: torch.Tensor, x_scale: float, x_zp: int, y_scale: float, y_zp: int, *,
                           bias: torch.Tensor | None = None, per_channel: bool = True,
                           symmetric: bool = True) -> IntegerLinear:
    """Quantize an (N, K) float weight to int8 (symmetric: Z_W = 0; else asymmetric) and precompute the constants."""
    check_float("weight", weight)
    check_ndim("weight", weight, 2)
    check_finite("weight", weight)
    n_out, k = weight.shape
    if k > MAX_K:
        raise ValueError(f"weight: in_features={k} exceeds {MAX_K}, beyond which int32 accumulators can overflow")
    for name, v in (("x_scale", x_scale), ("y_scale", y_scale)):
        if not float(v) > 0:
            raise ValueError(f"{name}: expected a positive scale, got {v}")
    for name, v in (("x_zp", x_zp), ("y_zp", y_zp)):
        if not -128 <= int(v) <= 127:
            raise ValueError(f"{name}: expected an int8 zero point in [-128, 127], got {v}")
    granularity = "channel" if per_channel else "tensor"
    w_scale, w_zp = compute_qparams(weight, 8, symmetric=symmetric, granularity=granularity, axis=0)
    w_q = quantize(weight, w_scale, w_zp, 8)
    w_scale = w_scale.reshape(-1).expand(n_out).contiguous()
    w_zp = w_zp.reshape(-1).expand(n_out).contiguous()
    w_colsum = w_q.to(torch.int32).sum(dim=1, dtype=torch.int32)
    const = -int(x_zp) * w_colsum + k * w_zp * int(x_zp)
    bias_q = None
    if bias is not None:
        check_float("bias", bias)
        if bias.shape != (n_out,):
            raise ValueError(f"bias: expected shape ({n_out},), got {tuple(bias.shape)}")
        bias_q64 = torch.round(bias.double() / (w_scale.double() * float(x_scale)))
        if bool((bias_q64.abs() > INT32_MAX).any()):
            raise ValueError("bias: too large to represent in int32 at scale S_W·S_X")
        bias_q = bias_q64.to(torch.int32)
        const = const + bias_q
    multiplier, shift = quantize_multiplier(w_scale.double() * float(x_scale) / float(y_scale))
    return IntegerLinear(w_q, w_zp.to(torch.int32), w_colsum, bias_q, const.to(torch.int32), multiplier, shift,
                         int(x_zp), int(y_zp), w_scale, float(x_scale), float(y_scale))


def integer_linear(x_q: torch.Tensor, layer: IntegerLinear) -> torch.Tensor:
    """q_Y (M, N) int8 from q_X (M, K) int8, in int32 arithmetic with the precomputed weight-side constants."""
    check_dtype("x_q", x_q, torch.int8)
    check_ndim("x_q", x_q, 2)
    if x_q.shape[1] != layer.w_q.shape[1]:
        raise ValueError(f"x_q: expected {layer.w_q.shape[1]} columns (in_features), got {x_q.shape[1]}")
    acc = x_q.to(torch.int32) @ layer.w_q.to(torch.int32).T  # (M, N) int32 Σ q_W q_X
    if bool((layer.w_zp != 0).any()):
        acc = acc - layer.w_zp * x_q.to(torch.int32).sum(dim=1, keepdim=True, dtype=torch.int32)  # Z_W Σ q_X
    acc = acc + layer.const
    return requantize(acc, layer.multiplier, layer.shift, layer.y_zp)


def _round_half_away(num: torch.Tensor, den) -> torch.Tensor:
    """round(num / den), ties away from zero, exact int64 (den > 0, an int or a tensor broadcasting over num)."""
    mag = (num.abs() + den // 2) // den
    return torch.where(num < 0, -mag, mag)


def integer_linear_int64(x_q: torch.Tensor, layer: IntegerLinear) -> torch.Tensor:
    """A separate plain implementation: Σ (q_W − Z_W)(q_X − Z_X) + bias in int64, exact integer rounding.

    Written without SRDHM/RDPOT, with exact int64 division: x·M0/2^31 is rounded to nearest with ties up
    (floor(v + 1/2), which is what SRDHM's nudge-and-truncate amounts to) and x/2^n to nearest with ties away from zero.
    """
    x64 = x_q.to(torch.int64) - layer.x_zp
    w64 = layer.w_q.to(torch.int64) - layer.w_zp.to(torch.int64)[:, None]
    acc = x64 @ w64.T
    if layer.bias_q is not None:
        acc = acc + layer.bias_q.to(torch.int64)
    n = layer.shift.to(torch.int64)
    acc = torch.clamp(acc * (1 << torch.clamp(-n, min=0)), INT32_MIN, INT32_MAX)
    y = torch.div(acc * layer.multiplier.to(torch.int64) + (1 << 30), 1 << 31, rounding_mode="floor")
    y = _round_half_away(y, torch.bitwise_left_shift(torch.ones_like(n), torch.clamp(n, min=0)))
    return torch.clamp(y + layer.y_zp, -128, 127).to(torch.int8)
