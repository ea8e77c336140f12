"""Affine (linear) quantization r = S (q - Z), from first principles.

Scale and zero point (all arithmetic in float32, IEEE division, round half to even):
  asymmetric  S = (r_max - r_min) / (q_max - q_min),   Z = clamp(round(q_min - r_min / S), q_min, q_max)
              with r_min = min(min(r), 0), r_max = max(max(r), 0), so that 0 is exactly representable and Z in range;
  symmetric   S = |r|_max / q_max,                      Z = 0.
A zero range (all-zero data) gets S = 1.
  quantize    q = clamp(round(r / S) + Z, q_min, q_max)
  dequantize  r̂ = S (q - Z)
Granularity: one (S, Z) per tensor, per channel (any axis), or per group of `group_size` consecutive elements along
an axis (the reduction dimension of a weight: axis -1 of an (N, K) matrix).
"""
from dataclasses import dataclass

import torch

from qtorch.quant._validate import check_axis, check_finite, check_float, check_group_size, check_tensor
from qtorch.quant.ranges import qrange

GRANULARITIES = ("tensor", "channel", "group")


def _true_div(num: torch.Tensor, den: float) -> torch.Tensor:
    """IEEE round-to-nearest num / den. (On CUDA, PyTorch divides by a Python scalar as a multiplication by its
    rounded reciprocal, which is off by one ulp for some inputs; dividing by a tensor is exact, as kernels are.)"""
    return num / torch.full_like(num, den)


def qparams_from_minmax(r_min: torch.Tensor, r_max: torch.Tensor, bits: int, signed: bool = True):
    """Asymmetric (S, Z) from observed minima and maxima (any equal shapes) -> (scale fp32, zero_point int32)."""
    q_min, q_max = qrange(bits, signed)
    r_min = torch.clamp(r_min.float(), max=0.0)
    r_max = torch.clamp(r_max.float(), min=0.0)
    scale = _true_div(r_max - r_min, float(q_max - q_min))
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # a NaN range keeps a NaN scale (NaN output row)
    zero_point = torch.clamp(torch.round(float(q_min) - r_min / scale), q_min, q_max).to(torch.int32)
    return scale, zero_point


def qparams_from_absmax(abs_max: torch.Tensor, bits: int):
    """Symmetric (S, Z = 0) from observed |r|_max -> (scale fp32, zero_point int32)."""
    _, q_max = qrange(bits, signed=True)
    scale = _true_div(abs_max.float(), float(q_max))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, torch.zeros_like(scale, dtype=torch.int32)


def _reduce_dims(x: torch.Tensor, granularity: str, axis: int | None, group_size: int | None):
    """View x so that the last dim is what one (S, Z) covers; return (view, restore_fn) to shape qparams."""
    if granularity == "tensor":
        return x.reshape(1, -1), lambda p: p.reshape(())
    if granularity == "channel":
        ax = check_axis("axis", 0 if axis is None else axis, x.dim())
        moved = x.movedim(ax, 0)
        keep = [1] * x.dim()
        keep[ax] = x.shape[ax]
        return moved.reshape(x.shape[ax], -1), lambda p: p.reshape(keep)
    ax = check_axis("axis", -1 if axis is None else axis, x.dim())
    if group_size is None:
        raise ValueError("group_size: required for granularity='group'")
    check_group_size("group_size", group_size, x.shape[ax])
    moved = x.movedim(ax, -1)  # (..., K)
    grouped_shape = moved.shape[:-1] + (moved.shape[-1] // group_size,)
    return moved.reshape(-1, group_size), lambda p: p.reshape(grouped_shape).movedim(-1, ax)


def compute_qparams(x: torch.Tensor, bits: int, *, symmetric: bool = False, granularity: str = "tensor",
                    axis: int | None = None, group_size: int | None = None, signed: bool = True):
    """(scale, zero_point) of x at the given granularity.

    Shapes: "tensor" -> (); "channel" -> x's shape with every dim but `axis` (default 0) set to 1 (broadcasts against
    x); "group" -> x's shape with `axis` (default -1) divided by group_size.
    """
    check_float("x", x)
    check_finite("x", x)
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity: expected one of {GRANULARITIES}, got {granularity!r}")
    if symmetric and not signed:
        raise ValueError("symmetric: symmetric quantization needs the signed range (signed=True)")
    qrange(bits, signed)  # validates bits
    if x.numel() == 0:
        raise ValueError("x: cannot compute quantization parameters of an empty tensor")
    rows, restore = _reduce_dims(x, granularity, axis, group_size)
    if symmetric:
        scale, zero_point = qparams_from_absmax(rows.abs().amax(dim=-1), bits)
    else:
        scale, zero_point = qparams_from_minmax(rows.amin(dim=-1), rows.amax(dim=-1), bits, signed)
    return restore(scale), restore(zero_point)


def _expand(p: torch.Tensor, like: torch.Tensor, axis: int | None, group_size: int | None) -> torch.Tensor:
    """Broadcast per-tensor / per-channel qparams as they are; repeat per-group qparams along their axis."""
    if group_size is None:
        return p
    ax = check_axis("axis", -1 if axis is None else axis, like.dim())
    if p.dim() != like.dim() or p.shape[ax] * group_size != like.shape[ax]:
        raise ValueError(f"scale: shape {tuple(p.shape)} does not match x {tuple(like.shape)} with group_size="
                         f"{group_size} along axis {ax}")
    return p.repeat_interleave(group_size, dim=ax)


def round_clamp(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, q_min: int, q_max: int) -> torch.Tensor:
    """clamp(round(x / S) + Z, q_min, q_max) in x's float dtype (round half to even), S and Z broadcast against x:
    the quantize formula itself, without argument checks (for forwards and inner loops)."""
    return torch.clamp(torch.round(x / scale) + zero_point, q_min, q_max)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, *, signed: bool = True,
             axis: int | None = None, group_size: int | None = None, allow_nonfinite: bool = False) -> torch.Tensor:
    """q = clamp(round(r / S) + Z, q_min, q_max) -> int8 (signed) or uint8 (unsigned), same shape as x.

    NaN/Inf in x raise ValueError (a host synchronisation), unless allow_nonfinite: then their q is unspecified and
    the caller propagates NaN through its scale (a layer's forward: qtorch::quantize_per_token)."""
    check_float("x", x)
    if not allow_nonfinite:
        check_finite("x", x)
    check_tensor("scale", scale)
    check_tensor("zero_point", zero_point)
    q_min, q_max = qrange(bits, signed)
    s = _expand(scale.float(), x, axis, group_size)
    z = _expand(zero_point, x, axis, group_size)
    return round_clamp(x.float(), s, z, q_min, q_max).to(torch.int8 if signed else torch.uint8)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, *, axis: int | None = None,
               group_size: int | None = None) -> torch.Tensor:
    """r̂ = S (q - Z) in float32."""
    check_tensor("q", q)
    if q.is_floating_point():
        raise TypeError(f"q: expected an integer tensor, got {q.dtype}")
    s = _expand(scale.float(), q, axis, group_size)
    z = _expand(zero_point, q, axis, group_size)
    return s * (q.to(torch.int32) - z).float()


@dataclass
class QuantizedTensor:
    """Integer values with the (S, Z) that map them back to reals: r̂ = S (q - Z)."""

    q: torch.Tensor  # same shape as the source, int8 / uint8
    scale: torch.Tensor  # fp32, shape per granularity (see compute_qparams)
    zero_point: torch.Tensor  # int32, same shape as scale
    bits: int
    signed: bool
    granularity: str
    axis: int | None
    group_size: int | None

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.q, self.scale, self.zero_point, axis=self.axis,
                          group_size=self.group_size if self.granularity == "group" else None)


def quantize_tensor(x: torch.Tensor, bits: int, *, symmetric: bool = False, granularity: str = "tensor",
                    axis: int | None = None, group_size: int | None = None, signed: bool = True) -> QuantizedTensor:
    """Compute (S, Z) at the given granularity and quantize x with them."""
    scale, zero_point = compute_qparams(x, bits, symmetric=symmetric, granularity=granularity, axis=axis,
                                        group_size=group_size, signed=signed)
    gs = group_size if granularity == "group" else None
    q = quantize(x, scale, zero_point, bits, signed=signed, axis=axis, group_size=gs)
    return QuantizedTensor(q, scale, zero_point, bits, signed, granularity, axis, gs)


def fake_quantize(x: torch.Tensor, bits: int, **kwargs) -> torch.Tensor:
    """dequantize(quantize(x)) in x's dtype: the values a quantized model actually computes with."""
    return quantize_tensor(x, bits, **kwargs).dequantize().to(x.dtype)
