"""compare: what quantization cost in accuracy, per layer and at the model output.

For each QuantLinear of the quantized model and the module of the same name in the float model, on the same inputs:
  sqnr_db        10 log10(‖y‖² / ‖y − ŷ‖²) of the layer's output in the quantized model (y from the float model):
                 the error accumulated up to and including this layer;
  local_sqnr_db  the same for the quantized layer fed the float model's input: this layer's own error;
  rel_error      ‖y − ŷ‖ / ‖y‖ (accumulated).
and the same SQNR / relative error of the model outputs (every floating-point tensor of the output together).
A layer called several times per forward (shared) is measured over all its calls.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from qtorch.api._batches import ErrorSum, float_leaves, run_model
from qtorch.nn.base import QuantLinear


@dataclass
class LayerError:
    name: str
    scheme: str
    bits_per_weight: float
    sqnr_db: float
    local_sqnr_db: float
    rel_error: float


@dataclass
class CompareReport:
    layers: list[LayerError] = field(default_factory=list)
    output_sqnr_db: float = math.inf
    output_rel_error: float = 0.0

    def table(self) -> str:
        width = max([len("layer")] + [len(r.name) for r in self.layers])
        head = f"{'layer':<{width}}  {'scheme':<20} {'bits/w':>7} {'SQNR dB':>8} {'local dB':>8} {'rel err':>9}"
        rows = [head, "-" * len(head)]
        rows += [f"{r.name:<{width}}  {r.scheme:<20} {r.bits_per_weight:>7.3f} {r.sqnr_db:>8.2f} "
                 f"{r.local_sqnr_db:>8.2f} {r.rel_error:>9.2e}" for r in self.layers]
        rows.append(f"{'(model output)':<{width}}  {'':<20} {'':>7} {self.output_sqnr_db:>8.2f} {'':>8} "
                    f"{self.output_rel_error:>9.2e}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def _scheme_name(config) -> str:
    bits = getattr(config, "bits", None)
    return config.scheme + (f"/{bits}b" if bits else "")


@torch.no_grad()
def compare(float_model: nn.Module, quant_model: nn.Module, inputs) -> CompareReport:
    """Per-layer and output-level error of quant_model against float_model on one batch `inputs` (a tensor,
    a tuple/list of positional arguments or a dict of keyword arguments). The models are separate objects with the
    same module names (quantize a deepcopy of the float model)."""
    for name, m in (("float_model", float_model), ("quant_model", quant_model)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name}: expected an nn.Module, got {type(m).__name__}")
    if float_model is quant_model:
        raise ValueError("quant_model: is the float model itself; quantize_ a copy.deepcopy(float_model) to compare")
    float_modules = dict(float_model.named_modules())
    layers = [(name, m) for name, m in quant_model.named_modules() if isinstance(m, QuantLinear)]
    if not layers:
        raise ValueError("quant_model: has no QuantLinear layers")
    missing = [name for name, _ in layers if name not in float_modules]
    if missing:
        raise ValueError(f"float_model: has no modules named {', '.join(missing)} (the models must share names)")

    captured = {name: [] for name, _ in layers}  # name -> [(float input, float output)] per call
    accumulated = {name: ErrorSum() for name, _ in layers}
    local = {name: ErrorSum() for name, _ in layers}

    def float_hook(name):
        def hook(module, args, output):
            captured[name].append((args[0].detach(), output.detach()))
        return hook

    def quant_hook(name):
        def hook(module, args, output):
            call = len(calls[name])
            calls[name].append(None)
            x, y = captured[name][call]
            accumulated[name].add(y, output)
            local[name].add(y, module.forward(x))  # forward() directly: no hooks, no recursion
        return hook

    calls = {name: [] for name, _ in layers}
    handles = [float_modules[name].register_forward_hook(float_hook(name)) for name, _ in layers]
    try:
        ref = float_leaves(run_model(float_model, inputs))
    finally:
        for h in handles:
            h.remove()
    handles = [m.register_forward_hook(quant_hook(name)) for name, m in layers]
    try:
        out = float_leaves(run_model(quant_model, inputs))
    finally:
        for h in handles:
            h.remove()
    if len(out) != len(ref):
        raise ValueError(f"output: the models return different structures ({len(ref)} vs {len(out)} tensors)")
    total = ErrorSum()
    for r, o in zip(ref, out):
        total.add(r, o)
    report = CompareReport(output_sqnr_db=total.sqnr_db, output_rel_error=total.rel_error)
    for name, m in layers:
        if not calls[name]:
            continue  # not reached by this input
        report.layers.append(LayerError(name, _scheme_name(m.config), m.bits_per_weight, accumulated[name].sqnr_db,
                                        local[name].sqnr_db, accumulated[name].rel_error))
    return report
