"""Clipping search for group quantization: per group, the clipping ratio α that minimises ‖w_g − ŵ_g‖².

For α on the grid CLIP_RATIOS = 1, 0.975, ..., 0.5 the group's range is shrunk before computing its (S, Z):
  symmetric   S = α·max|w_g| / q_max,  Z = 0
  asymmetric  (S, Z) = qparams_from_minmax(α·min(w_g), α·max(w_g))
values outside the clipped range saturate at q_min / q_max. Each group keeps the α of least squared error (ties go
to the larger α). α = 1 reproduces the plain scales bit for bit, so the result is never worse than no clipping.
Storage is unchanged: only the scales (and zero points) differ.
"""
import torch

from qtorch.quant.affine import dequantize, qparams_from_absmax, qparams_from_minmax, quantize

CLIP_RATIOS = tuple(1.0 - 0.025 * j for j in range(21))


def clip_search_qparams(weight: torch.Tensor, bits: int, group_size: int, symmetric: bool):
    """weight (N, K) float -> (scale (N, K/g) fp32, zero_point (N, K/g) int32) of least per-group squared error."""
    n, k = weight.shape
    w = weight.float()  # (N, K)
    groups = w.reshape(n, k // group_size, group_size)  # (N, K/g, g)
    g_min, g_max, g_absmax = groups.amin(-1), groups.amax(-1), groups.abs().amax(-1)  # (N, K/g) each
    best_err = best_scale = best_zp = None
    for alpha in CLIP_RATIOS:
        if symmetric:
            scale, zp = qparams_from_absmax(alpha * g_absmax, bits)
        else:
            scale, zp = qparams_from_minmax(alpha * g_min, alpha * g_max, bits)
        q = quantize(w, scale, zp, bits, axis=-1, group_size=group_size)  # (N, K) int8
        err = (dequantize(q, scale, zp, axis=-1, group_size=group_size) - w).pow(2)
        err = err.reshape(n, k // group_size, group_size).sum(-1)  # (N, K/g)
        if best_err is None:
            best_err, best_scale, best_zp = err, scale, zp
            continue
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zp = torch.where(better, zp, best_zp)
    return best_scale, best_zp
