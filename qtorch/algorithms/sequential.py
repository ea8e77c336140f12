"""Run GPTQ over a whole model, stage by stage, so each layer is calibrated on the inputs the quantized model gives it.

Linear layers are grouped into stages by their name: everything up to the first numeric component
(`bert.encoder.layer.3.attention.self.query` -> stage `bert.encoder.layer.3`; `output` -> stage `output`), in module
order. For each stage: the calibration batches run through the model (earlier stages already quantized; the pass stops
as soon as the stage's module has run) while hooks collect the Hessian H = (2/n) Σ x xᵀ of each of its linear layers,
then each weight is replaced by its GPTQ reconstruction ŵ = S (q − Z).
true_sequential (Frantar et al., 2022, "true sequential"): inside a stage the layers are quantized in the order they
run, grouped by the input tensor they read (q / k / v share one), and each group's Hessians are collected again
after the groups before it are quantized, so e.g. the attention output projection sees the quantized q / k / v.
"""
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from qtorch.algorithms.gptq import GroupQuantizedWeight, HessianAccumulator, gptq_quantize_weight


class _StageDone(Exception):
    """Raised by a hook once the stage being calibrated has run: the rest of the forward pass is not needed."""


def stage_of(name: str) -> str:
    """The stage of a module name: its prefix up to and including the first all-digit component."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return name


def linear_stages(model: nn.Module, filter_fn: Callable[[nn.Linear, str], bool] | None = None):
    """[(stage, [(name, linear), ...]), ...] in module order, for the nn.Linear layers filter_fn accepts."""
    stages: dict[str, list[tuple[str, nn.Linear]]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (filter_fn is None or filter_fn(module, name)):
            stages.setdefault(stage_of(name), []).append((name, module))
    return list(stages.items())


def _call(model: nn.Module, batch):
    """Default forward: model(**batch) for a dict, model(*batch) for a tuple, else model(batch)."""
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, tuple):
        return model(*batch)
    return model(batch)


def collect_hessians(model: nn.Module, stop_at: str, layers, batches: Sequence, forward=_call):
    """Run every batch through the model until module `stop_at` has run -> ({name: HessianAccumulator} of `layers`,
    the layers grouped by the input tensor they read, in call order (from the first batch))."""
    accumulators = {name: HessianAccumulator(lin.in_features, lin.weight.device) for name, lin in layers}
    first_inputs: list[tuple[str, torch.Tensor]] = []  # (layer, input) of the first batch, in call order

    def record(name):
        def hook(mod, args):
            accumulators[name].add(args[0])
            if len(first_inputs) < len(layers) and all(n != name for n, _ in first_inputs):
                first_inputs.append((name, args[0]))
        return hook

    def stop(*_):
        raise _StageDone

    hooks = [lin.register_forward_pre_hook(record(name)) for name, lin in layers]
    hooks.append(model.get_submodule(stop_at).register_forward_hook(stop))
    try:
        for batch in batches:
            try:
                forward(model, batch)
            except _StageDone:
                pass
    finally:
        for hook in hooks:
            hook.remove()
    for name, acc in accumulators.items():
        if acc.count == 0:
            raise ValueError(f"batches: layer {name!r} saw no calibration input; it cannot be calibrated")
    by_name = dict(layers)
    groups: list[list[tuple[str, nn.Linear]]] = []
    for i, (name, x) in enumerate(first_inputs):
        if i and x is first_inputs[i - 1][1]:
            groups[-1].append((name, by_name[name]))
        else:
            groups.append([(name, by_name[name])])
    late = [(name, lin) for name, lin in layers if all(n != name for n, _ in first_inputs)]  # not in the first batch
    return accumulators, groups + ([late] if late else [])


@torch.no_grad()
def gptq_quantize_model(model: nn.Module, batches: Sequence, *, forward: Callable = _call, bits: int = 4,
                        group_size: int = 128, symmetric: bool = False, damp: float = 0.1, clip_search: bool = True,
                        act_order: bool = True, true_sequential: bool = False,
                        filter_fn: Callable[[nn.Linear, str], bool] | None = None,
                        layer_formats: Mapping[str, tuple[int, int, bool]] | None = None,
                        progress: bool = True) -> dict[str, GroupQuantizedWeight]:
    """Quantize the linear layers of `model` in place with GPTQ; return their integer weights by module name.

    batches: the calibration inputs, each run as forward(model, batch) (default: model(**batch) for a dict). They
    must hold no padding tokens, which would enter the Hessians. The model keeps float modules whose weights are the
    reconstructions ŵ; build QuantLinear modules from the returned weights (qtorch.algorithms.quantize_gptq_).
    layer_formats: (bits, group_size, symmetric) per layer name, overriding the keyword arguments.
    """
    if not callable(forward):
        raise TypeError(f"forward: expected a callable (model, batch), got {type(forward).__name__}")
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__len__") or len(batches) == 0:
        raise ValueError("batches: expected a non-empty sequence of calibration batches")
    stages = linear_stages(model, filter_fn)
    if not stages:
        raise ValueError("model: no nn.Linear layer to quantize (check filter_fn)")
    results: dict[str, GroupQuantizedWeight] = {}
    for stage, layers in tqdm(stages, desc="GPTQ", unit="stage", disable=not progress, leave=False):
        accumulators, groups = collect_hessians(model, stage, layers, batches, forward)
        if not true_sequential:
            groups = [layers]
        for i, group in enumerate(groups):
            if i:  # the groups before it are quantized: collect this group's Hessians again
                accumulators, _ = collect_hessians(model, group[-1][0], group, batches, forward)
            _quantize_group(group, accumulators, results, layer_formats, bits, group_size, symmetric, damp,
                            clip_search, act_order)
    return results


def _quantize_group(group, accumulators, results, layer_formats, bits, group_size, symmetric, damp, clip_search,
                    act_order) -> None:
    for name, lin in group:
        l_bits, l_group, l_sym = (layer_formats or {}).get(name, (bits, group_size, symmetric))
        result = gptq_quantize_weight(lin.weight, accumulators[name].hessian, bits=l_bits, group_size=l_group,
                                      symmetric=l_sym, damp=damp, clip_search=clip_search, act_order=act_order)
        lin.weight.copy_(result.dequantize().to(lin.weight.dtype))
        results[name] = result
