"""Quantize a copy of a model with each named scheme and measure it against the float model on the same inputs:
stored weight bits, output error, per-layer SQNR (qtorch.compare) and, on a GPU, latency."""
import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

import qtorch
from qtorch.eval.measure import linear_weight_storage, median_ms
from qtorch.eval.schemes import Calibration, get_scheme
from qtorch.nn.base import QuantLinear


@dataclass
class SchemeResult:
    scheme: str  # "float" for the unquantized model
    description: str
    bits_per_weight: float  # stored bits per linear weight, metadata included
    weight_bytes: int  # bytes of all linear weights as stored
    errors: dict[str, float]  # from the model's error_fn, e.g. {"sqnr_db": ...} or {"cosine_mean": ..., ...}
    latency_ms: float | None  # GPU: median forward time on the evaluation inputs after warm-up; CPU: None
    quantize_s: float  # time to quantize (and calibrate)
    layer_sqnr_db: dict[str, float] = field(default_factory=dict)  # layer -> its own (local) output SQNR


@dataclass(frozen=True)
class EvalTask:
    """What to evaluate: a float model, its inputs and how to judge its outputs."""

    model: nn.Module
    inputs: object  # the evaluation batch (run_model form: tensor / tuple / dict)
    calibration: Calibration
    error_fn: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]  # (reference out, out) -> errors
    reference: torch.Tensor  # float32 output of the float model on `inputs` (the ground truth)
    model_errors: Callable[[nn.Module], dict[str, float]] | None = None  # more errors from running the model itself


def _run(model, inputs):
    from qtorch.api._batches import run_model

    return run_model(model, inputs)


@torch.no_grad()
def evaluate_schemes(task: EvalTask, schemes: Sequence[str], *, repeats: int = 10, progress: bool = True,
                     label: str = "schemes") -> list[SchemeResult]:
    """The float model's row, then one row per scheme (each on a deepcopy of the float model).

    Latency (median of `repeats` forwards after warm-up, qtorch.eval.measure.median_ms) only on a GPU: on the CPU the
    quantized layers run the reference ops, and a shared CPU made the same row vary 10x between runs."""
    device = next(task.model.parameters()).device

    def latency(model):
        return median_ms(lambda: _run(model, task.inputs), device, repeats) if device.type == "cuda" else None

    def errors(model, out):
        return {**task.error_fn(task.reference, out), **(task.model_errors(model) if task.model_errors else {})}

    results = []
    stored, count = linear_weight_storage(task.model)
    float_out = _run(task.model, task.inputs)
    results.append(SchemeResult("float", f"unquantized ({next(task.model.parameters()).dtype})".replace("torch.", ""),
                                8.0 * stored / count, stored, errors(task.model, float_out),
                                latency(task.model), 0.0))
    for name in tqdm(schemes, desc=label, unit="scheme", disable=not progress):
        scheme = get_scheme(name)
        quant = copy.deepcopy(task.model)
        t0 = time.perf_counter()
        scheme.apply(quant, task.calibration)
        quantize_s = time.perf_counter() - t0
        stored, count = linear_weight_storage(quant)
        out = _run(quant, task.inputs)
        # per-layer SQNR needs QuantLinear layers (not fp8-sim's) under the same names: not for schemes that wrap
        # layers (InputScaledLinear)
        float_names = {n for n, _ in task.model.named_modules()}
        quant_names = [n for n, m in quant.named_modules() if isinstance(m, QuantLinear)]
        layer_sqnr = ({r.name: r.local_sqnr_db for r in qtorch.compare(task.model, quant, task.inputs).layers}
                      if quant_names and all(n in float_names for n in quant_names) else {})
        results.append(SchemeResult(name, scheme.description, 8.0 * stored / count, stored, errors(quant, out),
                                    latency(quant), quantize_s, layer_sqnr))
    return results


def logits_errors(reference: torch.Tensor, out: torch.Tensor) -> dict[str, float]:
    """SQNR (dB) of the logits and the share of positions whose top-1 token is unchanged."""
    ref, out = reference.detach().double(), out.detach().double().to(reference.device)
    noise = float((ref - out).pow(2).sum())
    sqnr = math.inf if noise == 0 else 10.0 * math.log10(float(ref.pow(2).sum()) / noise)
    top1 = float((ref.argmax(-1) == out.argmax(-1)).double().mean())
    return {"sqnr_db": sqnr, "top1_agree": top1}
