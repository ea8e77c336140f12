"""SmoothQuant (Xiao et al., 2023): migrate activation outliers into the weights before W8A8 quantization.

For the layers reading one input X (K columns; q / k / v share it) with weights W_l, per input channel j:
    s_j = max|X_j|^α / max_l max_n |W_l[n, j]|^(1−α),     X' = X / s,   W_l' = W_l diag(s),   X' W_l'ᵀ = X W_lᵀ.
Outlier channels of X are divided down (a per-tensor or per-token activation scale then resolves the other channels
better) while W absorbs them (per output channel int8 weights keep them well). The migration strength α is chosen
per input group on the calibration data: from ALPHA_GRID (and "no smoothing"), the α minimising
    Σ_l ‖X W_lᵀ − Q_a(X') Q_w(W_l')ᵀ‖²
over sampled calibration rows, with Q_w int8 per output channel (symmetric) and Q_a the activation quantization of
the config: one per-tensor asymmetric (S_X, Z_X) from the calibration range (W8A8StaticConfig) or one per row
(W8A8DynamicConfig). Where the scale cannot be folded into a preceding linear layer the layer is wrapped in an
InputScaledLinear (qtorch.algorithms.input_scaling), which costs one multiply of its input per call.

Use it before quantize_ (and calibrate), on the float model:
    smooth_quant_(model, batches, W8A8StaticConfig())
    quantize_(model, W8A8StaticConfig()); calibrate(model, batches)
"""
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from qtorch.algorithms.input_scaling import (apply_input_scale, check_alpha, collect_input_stats, default_folds,
                                             float_linears, input_groups)
from qtorch.api._batches import run_model
from qtorch.config import W8A8DynamicConfig, W8A8StaticConfig
from qtorch.quant.affine import compute_qparams, dequantize, fake_quantize, qparams_from_minmax, quantize

ALPHA_GRID = tuple(round(0.1 * i, 2) for i in range(1, 10))  # 0.1 … 0.9
MIN_SCALE = 1e-5


def smoothing_scale(x_absmax: torch.Tensor, w_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """s_j = max|X_j|^α / max|W_j|^(1−α) (K,), clamped to ≥ MIN_SCALE; channels never active keep s_j = 1."""
    s = x_absmax.clamp(min=MIN_SCALE).pow(alpha) / w_absmax.clamp(min=MIN_SCALE).pow(1.0 - alpha)
    return torch.where(x_absmax > 0, s.clamp(min=MIN_SCALE), torch.ones_like(s))


def _fake_quant_input(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, static: bool) -> torch.Tensor:
    """Q_a(x): per tensor from the calibration range [lo, hi] (static) or per row (dynamic), asymmetric int8."""
    if static:
        scale, zp = qparams_from_minmax(lo, hi, 8)
        return dequantize(quantize(x, scale, zp, 8), scale, zp)
    return fake_quantize(x, 8, symmetric=False, granularity="channel", axis=0)


def _int8_weight(w: torch.Tensor) -> torch.Tensor:
    """Q_w(w): int8 per output channel, symmetric."""
    scale, zp = compute_qparams(w, 8, symmetric=True, granularity="channel", axis=0)
    return dequantize(quantize(w, scale, zp, 8), scale, zp)


def _output_error(stats, weights, scale: torch.Tensor, static: bool) -> float:
    """Σ_l ‖X W_lᵀ − Q_a(X/s) Q_w(W_l s)ᵀ‖² over the sampled rows."""
    x = stats.rows  # (R, K)
    lo, hi = (stats.minimum / scale).min(), (stats.maximum / scale).max()  # the static range of X / s
    x_q = _fake_quant_input(x / scale, lo, hi, static)
    return sum(float((x @ w.t() - x_q @ _int8_weight(w * scale).t()).pow(2).sum()) for w in weights)


@torch.no_grad()
def smooth_quant_(model: nn.Module, batches: Sequence, config=W8A8StaticConfig(), *, alpha: float | None = None,
                  folds: dict[str, str] | None = None, forward: Callable = run_model,
                  filter_fn: Callable[[nn.Linear, str], bool] | None = None) -> dict[str, float | None]:
    """Smooth, in place, the float nn.Linear layers filter_fn(linear, name) accepts, for W8A8 quantization by
    `config` (W8A8StaticConfig or W8A8DynamicConfig), from calibration `batches` (run as forward(model, batch);
    without padding tokens, which would enter the statistics).

    alpha: a fixed migration strength in [0, 1], or None to choose it per input group from ALPHA_GRID (or no
    smoothing) by the quantized output error on the calibration rows. folds: {layer: preceding linear} whose output
    feeds the layer channel for channel, to fold 1/s into (default: input_scaling.default_folds(model)).
    Returns the α chosen per layer (None: left unsmoothed). The model computes the same function in float.
    """
    if not isinstance(config, (W8A8StaticConfig, W8A8DynamicConfig)):
        raise TypeError(f"config: expected W8A8StaticConfig or W8A8DynamicConfig, got {type(config).__name__}")
    check_alpha(alpha)
    linears = float_linears(model, filter_fn, "smooth")
    folds = default_folds(model) if folds is None else dict(folds)
    stats = collect_input_stats(model, linears, batches, forward)
    static = isinstance(config, W8A8StaticConfig)
    chosen: dict[str, float | None] = {}
    for group in input_groups(stats):
        s = stats[group[0]]
        weights = [linears[n].weight.detach().float() for n in group]
        w_absmax = torch.stack([w.abs().amax(0) for w in weights]).amax(0)  # (K,)
        candidates = [alpha] if alpha is not None else [None, *ALPHA_GRID]
        best, best_err = None, None
        for a in candidates:
            scale = torch.ones_like(s.absmax) if a is None else smoothing_scale(s.absmax, w_absmax, a)
            err = _output_error(s, weights, scale, static)
            if best_err is None or err < best_err:
                best, best_err = a, err
        if best is not None:
            fold_from = folds.get(group[0]) if len(group) == 1 else None
            apply_input_scale(model, group, smoothing_scale(s.absmax, w_absmax, best), fold_from)
        chosen.update({n: best for n in group})
    return chosen
