"""Per-input-channel scaling of linear layers, shared by SmoothQuant and AWQ: y = W x = (W diag(s)) (x / s).

A scale s (K,) > 0 multiplies the columns of W and divides the layer's input. The division lands
  - in a preceding linear layer whose output feeds this layer's input channel for channel (folded: its rows and
    bias are divided by s; free at run time), found by `folds` (e.g. BERT's value projection before the attention
    output projection: context = softmax(QKᵀ) V is linear in V per channel);
  - otherwise in an InputScaledLinear around the layer (one multiply of the input by 1/s per call). Post-LN BERT
    gives no LayerNorm fold: each LayerNorm output also feeds the residual sum, which the scale would change.
Layers that read the same input tensor (q / k / v) share one s. Statistics come from one pass of the calibration
batches through the float model (collect_input_stats).
"""
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from qtorch.api._batches import run_model

MAX_ROWS = 1024  # calibration input rows kept per layer for the scale searches' output-error measurements
# (preceding linear, this layer) name suffixes whose output feeds this layer's input channel for channel
FOLD_SUFFIXES = ((".attention.self.value", ".attention.output.dense"),  # BERT / MiniLM
                 (".attention.wv", ".attention.wo"))  # qtorch.models.llama (when n_kv_heads == n_heads)


class InputScaledLinear(nn.Module):
    """y = linear(x · inv_scale): a layer whose weight columns were multiplied by s = 1 / inv_scale (K,)."""

    def __init__(self, linear: nn.Module, inv_scale: torch.Tensor):
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale.detach().clone())  # (K,) fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale.to(x.dtype))


@dataclass
class InputStats:
    """Per input channel statistics of one layer's inputs over the calibration batches, and a sample of rows."""

    absmax: torch.Tensor  # (K,) max |x_j|
    absmean: torch.Tensor  # (K,) mean |x_j|
    minimum: torch.Tensor  # (K,) min x_j
    maximum: torch.Tensor  # (K,) max x_j
    rows: torch.Tensor  # (≤ MAX_ROWS, K) fp32 sample of input rows
    count: int = 0
    sharing: list[str] = field(default_factory=list)  # the layers reading the same input tensor (itself included)


def _update(stats: dict, name: str, x: torch.Tensor, keep: int, gen: torch.Generator) -> None:
    rows = x.detach().reshape(-1, x.shape[-1]).float()  # (n, K)
    if rows.shape[0] == 0:
        return
    s = stats.get(name)
    sample = rows[torch.randperm(rows.shape[0], generator=gen)[:keep].to(rows.device)]
    if s is None:
        stats[name] = InputStats(rows.abs().amax(0), rows.abs().sum(0), rows.amin(0), rows.amax(0), sample,
                                 rows.shape[0])
        return
    s.absmax = torch.maximum(s.absmax, rows.abs().amax(0))
    s.absmean = s.absmean + rows.abs().sum(0)  # a sum until collect_input_stats divides by the count
    s.minimum, s.maximum = torch.minimum(s.minimum, rows.amin(0)), torch.maximum(s.maximum, rows.amax(0))
    s.rows = torch.cat([s.rows, sample])[:MAX_ROWS]
    s.count += rows.shape[0]


@torch.no_grad()
def collect_input_stats(model: nn.Module, linears: Mapping[str, nn.Linear], batches: Sequence,
                        forward: Callable = run_model, seed: int = 0) -> dict[str, InputStats]:
    """Run the batches through the model, recording each named linear layer's input statistics and which layers
    read the very same input tensor (from the first batch)."""
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__len__") or len(batches) == 0:
        raise ValueError("batches: expected a non-empty sequence of calibration batches")
    stats: dict[str, InputStats] = {}
    first_inputs: list[tuple[str, torch.Tensor]] = []
    keep = max(1, -(-MAX_ROWS // len(batches)))  # rows sampled per batch
    gen = torch.Generator().manual_seed(seed)
    hooks = []
    for name, lin in linears.items():
        def hook(mod, args, name=name):
            _update(stats, name, args[0], keep, gen)
            if len(first_inputs) < len(linears) and all(n != name for n, _ in first_inputs):
                first_inputs.append((name, args[0]))
        hooks.append(lin.register_forward_pre_hook(hook))
    try:
        for batch in batches:
            forward(model, batch)
    finally:
        for h in hooks:
            h.remove()
    unseen = [name for name in linears if name not in stats]
    if unseen:
        raise ValueError(f"batches: these layers saw no calibration input: {', '.join(unseen)}")
    for name, s in stats.items():
        s.absmean = s.absmean / s.count
        own = dict(first_inputs).get(name)
        s.sharing = [n for n, x in first_inputs if x is own] if own is not None else [name]
    return stats


def input_groups(stats: Mapping[str, InputStats]) -> list[list[str]]:
    """The layers grouped by shared input, in module order."""
    groups, seen = [], set()
    for name, s in stats.items():
        if name not in seen:
            group = [n for n in s.sharing if n in stats] or [name]
            groups.append(group)
            seen.update(group)
    return groups


def default_folds(model: nn.Module) -> dict[str, str]:
    """{layer: preceding linear} pairs of FOLD_SUFFIXES present in the model with matching widths."""
    modules = dict(model.named_modules())
    folds = {}
    for name, module in modules.items():
        for prev_suffix, suffix in FOLD_SUFFIXES:
            if name.endswith(suffix) and isinstance(module, nn.Linear):
                prev = modules.get(name[:-len(suffix)] + prev_suffix)
                if isinstance(prev, nn.Linear) and prev.out_features == module.in_features:
                    folds[name] = name[:-len(suffix)] + prev_suffix
    return folds


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def _inner(module: nn.Module) -> nn.Linear:
    return module.linear if isinstance(module, InputScaledLinear) else module


@torch.no_grad()
def apply_input_scale(model: nn.Module, group: Sequence[str], scale: torch.Tensor, fold_from: str | None) -> None:
    """W_l ← W_l diag(s) for each layer of the group; x / s folded into `fold_from` (its rows and bias divided by s)
    or done by an InputScaledLinear around each layer."""
    for name in group:
        lin = model.get_submodule(name)
        lin.weight.mul_(scale.to(lin.weight)[None, :])
        if fold_from is None:
            _replace(model, name, InputScaledLinear(lin, (1.0 / scale).float()))
    if fold_from is not None:
        prev = _inner(model.get_submodule(fold_from))
        prev.weight.div_(scale.to(prev.weight)[:, None])
        if prev.bias is not None:
            prev.bias.div_(scale.to(prev.bias))


def check_alpha(alpha) -> None:
    """alpha: a number in [0, 1] (the scale exponent) or None (searched)."""
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or
                              not 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha: expected a number in [0, 1] or None, got {alpha!r}")


def float_linears(model: nn.Module, filter_fn, action: str) -> dict[str, nn.Linear]:
    """The float nn.Linear layers filter_fn(linear, name) accepts (an InputScaledLinear's inner layer under its own
    name `….linear`: scaling it again nests a second InputScaledLinear); none is an error (`action`: what the
    caller would do to them, for its message)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and (filter_fn is None or filter_fn(m, name)):
            out[name] = m
    if not out:
        raise ValueError(f"model: no float nn.Linear layer to {action} (check filter_fn)")
    return out
