"""AWQ (Lin et al., 2024): activation-aware per-input-channel scaling before low-bit group weight quantization.

For the layers reading one input X (K columns; q / k / v share it) with weights W_l, per input channel j:
    s_j = mean|X_j|^α / sqrt(max_j mean|X_j|^α · min_j mean|X_j|^α),    W_l' = W_l diag(s),   X' = X / s.
Scaling up the weight columns of salient (large-activation) channels shrinks their relative rounding error, at the
cost of the other channels sharing their group scales. α is searched on the grid ALPHA_GRID (α = 0: no scaling) per
input group for the least calibration output error
    Σ_l ‖X W_lᵀ − (X / s) Q(W_l diag(s))ᵀ‖²
over sampled calibration rows, Q round-to-nearest group quantization in the config's format (the clipping search,
when config.clip_search, runs afterwards in quantize_ on the scaled weights, as in the paper: searching α through it
costs 21× the time on MiniLM for no gain in the search's choice). The scaled model computes the same function in float; then quantize it as usual:
    awq_(model, batches, cfg); quantize_(model, cfg)                 (round-to-nearest, clip search if cfg says so)
    awq_(model, batches, cfg); quantize_gptq_(model, batches, cfg)   (GPTQ on the scaled weights)
Where 1/s cannot be folded into a preceding linear layer the layer is wrapped in an InputScaledLinear
(qtorch.algorithms.input_scaling): one multiply of its input per call.
"""
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from qtorch.algorithms.input_scaling import (apply_input_scale, check_alpha, collect_input_stats, default_folds,
                                             float_linears, input_groups)
from qtorch.api._batches import run_model
from qtorch.config import GroupWeightOnlyConfig
from qtorch.quant.affine import compute_qparams, dequantize, quantize

ALPHA_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0, 0.05, …, 1 (the AWQ paper's grid)


def awq_scale(x_absmean: torch.Tensor, alpha: float) -> torch.Tensor:
    """s = mean|X|^α normalised by the geometric mean of its extremes (K,); inactive channels keep s = 1 before
    normalisation."""
    s = torch.where(x_absmean > 0, x_absmean.clamp(min=1e-8).pow(alpha), torch.ones_like(x_absmean))
    return s / (s.max() * s.min()).sqrt()


def group_fake_quantize(w: torch.Tensor, config: GroupWeightOnlyConfig) -> torch.Tensor:
    """Q(w): w (N, K) round-to-nearest per group in config's format (bits, group_size, symmetric)."""
    g = config.group_size
    scale, zp = compute_qparams(w, config.bits, symmetric=config.symmetric, granularity="group", axis=-1, group_size=g)
    return dequantize(quantize(w, scale, zp, config.bits, axis=-1, group_size=g), scale, zp, axis=-1, group_size=g)


def _output_error(x: torch.Tensor, weights, scale: torch.Tensor, config) -> float:
    """Σ_l ‖X W_lᵀ − (X / s) Q(W_l s)ᵀ‖² over the sampled rows x (R, K)."""
    return sum(float((x @ w.t() - (x / scale) @ group_fake_quantize(w * scale, config).t()).pow(2).sum())
               for w in weights)


@torch.no_grad()
def awq_(model: nn.Module, batches: Sequence, config: GroupWeightOnlyConfig = GroupWeightOnlyConfig(
        bits=4, group_size=128, symmetric=False), *, alpha: float | None = None, folds: dict[str, str] | None = None,
         forward: Callable = run_model, filter_fn: Callable[[nn.Linear, str], bool] | None = None) -> dict[str, float]:
    """Scale, in place, the float nn.Linear layers filter_fn(linear, name) accepts for group quantization by
    `config`, from calibration `batches` (run as forward(model, batch); without padding tokens).

    alpha: a fixed exponent in [0, 1], or None to search ALPHA_GRID per input group on the calibration rows.
    folds: {layer: preceding linear} to fold 1/s into (default: input_scaling.default_folds(model)).
    Returns the α chosen per layer. Quantize afterwards with quantize_(model, config) or quantize_gptq_.
    """
    if not isinstance(config, GroupWeightOnlyConfig):
        raise TypeError(f"config: expected a GroupWeightOnlyConfig, got {type(config).__name__}")
    check_alpha(alpha)
    linears = float_linears(model, filter_fn, "scale")
    bad = [n for n, lin in linears.items() if lin.in_features % config.group_size]
    if bad:
        raise ValueError(f"config: group_size={config.group_size} does not divide the input width of "
                         f"{', '.join(bad)}")
    folds = default_folds(model) if folds is None else dict(folds)
    stats = collect_input_stats(model, linears, batches, forward)
    chosen: dict[str, float] = {}
    for group in input_groups(stats):
        s = stats[group[0]]
        weights = [linears[n].weight.detach().float() for n in group]
        candidates = [alpha] if alpha is not None else ALPHA_GRID
        errors = [_output_error(s.rows, weights, awq_scale(s.absmean, a), config) for a in candidates]
        best = candidates[min(range(len(candidates)), key=errors.__getitem__)]
        if best != 0.0:
            fold_from = folds.get(group[0]) if len(group) == 1 else None
            apply_input_scale(model, group, awq_scale(s.absmean, best), fold_from)
        chosen.update({n: best for n in group})
    return chosen
