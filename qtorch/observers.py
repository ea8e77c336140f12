"""Range observers for static activation quantization: they watch the tensors a layer sees during calibration and
give one per-tensor asymmetric (S, Z) at the end (qtorch.quant.qparams_from_minmax: S = (r_max − r_min) / 255,
Z = clamp(round(−128 − r_min / S), −128, 127), with 0 always inside [r_min, r_max]).

  MinMaxObserver         r_min = min over all batches, r_max = max over all batches
  MovingAverageObserver  r ← r + c (r_batch − r), starting from the first batch's min / max (c = averaging_constant)
  PercentileObserver     mean over batches of each batch's (100 − p)-th and p-th percentiles (clips rare outliers)
"""
import math

import torch

from qtorch.quant.affine import qparams_from_minmax
from qtorch.quant._validate import check_finite, check_float


class Observer:
    """Base: `observe(x)` per batch, then `qparams()` -> (scale (1,) fp32, zero_point (1,) int32)."""

    def __init__(self):
        self.r_min: torch.Tensor | None = None  # () fp32
        self.r_max: torch.Tensor | None = None  # () fp32
        self.batches = 0

    def reset(self) -> None:
        self.r_min = self.r_max = None
        self.batches = 0

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        check_float("x", x)
        check_finite("x", x)
        if x.numel() == 0:
            return
        lo, hi = self._batch_range(x.detach())
        if self.r_min is None:
            self.r_min, self.r_max = lo, hi
        else:
            self.r_min, self.r_max = self._merge(lo, hi)
        self.batches += 1

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.amin().float(), x.amax().float()

    def _merge(self, lo, hi):
        raise NotImplementedError

    def qparams(self, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        if self.r_min is None:
            raise ValueError("observer: no data observed; run calibration batches through the model first")
        scale, zero_point = qparams_from_minmax(self.r_min, self.r_max, bits)
        return scale.reshape(1), zero_point.reshape(1)


class MinMaxObserver(Observer):
    def _merge(self, lo, hi):
        return torch.minimum(self.r_min, lo), torch.maximum(self.r_max, hi)


class MovingAverageObserver(Observer):
    def __init__(self, averaging_constant: float = 0.01):
        super().__init__()
        self.c = float(averaging_constant)

    def _merge(self, lo, hi):
        return self.r_min + self.c * (lo - self.r_min), self.r_max + self.c * (hi - self.r_max)


class PercentileObserver(Observer):
    def __init__(self, percentile: float = 99.99):
        super().__init__()
        self.p = float(percentile)

    def _batch_range(self, x):
        flat = x.reshape(-1).float()
        n = flat.numel()
        k_hi = min(n, max(1, math.ceil(self.p / 100.0 * n)))  # 1-based rank of the p-th percentile
        k_lo = n + 1 - k_hi
        return flat.kthvalue(k_lo).values, flat.kthvalue(k_hi).values

    def _merge(self, lo, hi):
        b = self.batches  # running mean over batches
        return self.r_min + (lo - self.r_min) / (b + 1), self.r_max + (hi - self.r_max) / (b + 1)


def make_observer(config) -> Observer:
    """The observer a W8A8StaticConfig asks for."""
    if config.observer == "minmax":
        return MinMaxObserver()
    if config.observer == "moving_average":
        return MovingAverageObserver(config.averaging_constant)
    return PercentileObserver(config.percentile)
