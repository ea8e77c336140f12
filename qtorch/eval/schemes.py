"""The named quantization schemes the demo and the benchmarks run, each applied to a model with qtorch.quantize_.

  w8a8        W8A8DynamicConfig: int8 weights per channel × int8 activations per token (dynamic)
  w8a8-static W8A8StaticConfig: int8 activations with one calibrated (S_X, Z_X) per layer
  w8a16       Int8WeightOnlyConfig: int8 weights per channel, float activations
  w4a16       GroupWeightOnlyConfig(4, g=128, asymmetric): round-to-nearest int4 per group of 128
  w4a16-clip  the same with a per-group clipping search (smaller weight error, same storage)
  w4a16-gptq  the same layout, weights calibrated by GPTQ (qtorch.algorithms)
  w8a8-sq, w8a8-static-sq   the W8A8 schemes after SmoothQuant (qtorch.algorithms.smooth_quant_, α searched)
  w4a16-awq   AWQ scaling (qtorch.algorithms.awq_) then int4 g128 with the clipping search
  w4a16-awq-gptq  AWQ scaling then GPTQ
  codebook4   CodebookConfig(4): a K-means codebook of 16 float32 centroids per output channel
  mixed45     AWQ scaling, then qtorch.plan_bits over GPTQ int4 g128 / g64 and int8 per layer, at most 4.5 bits
              per weight (sensitivities of the GPTQ weights themselves), then qtorch.algorithms.quantize_plan_
  mixed5      the same with GPTQ int4 g128 / g64 / g32 and int8, at most 5 bits per weight
Asymmetric int4 is used throughout: on MiniLM it keeps 0.961 mean cosine where symmetric int4 keeps 0.942.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn as nn

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)

W4_CONFIG = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False)
W4_CLIP_CONFIG = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False, clip_search=True)
# Mixed-precision budgets and candidates. Chosen on a held-out quarter of calibration_generic (every 4th sentence;
# the other three quarters calibrate), mean cosine there: at 4.5 bits, plan on round-to-nearest sensitivities then
# GPTQ 0.99296, on GPTQ sensitivities 0.99283, AWQ first then GPTQ sensitivities 0.99387; at 5 bits 0.99500 /
# 0.99498 / 0.99564 (benchmarks/NOTES.md). GPTQ damping 0.1 as elsewhere (0.01 / 0.03 / 0.1 on that split:
# 0.99007 / 0.99011 / 0.98982 for int4 g128, within noise).
MIXED_PLANS = {"mixed45": (4.5, (128, 64)), "mixed5": (5.0, (128, 64, 32))}  # name -> (bits/weight, int4 groups)
CODEBOOK_ITERATIONS = 10  # Lloyd iterations of codebook4 (the default 100 takes minutes on a CPU for little gain)


@dataclass(frozen=True)
class Calibration:
    """Data a calibrated scheme may use (never the evaluation data)."""

    batches: Sequence  # inputs as run_model takes them (tensor / tuple / dict); for GPTQ without padding
    plan_inputs: object  # one batch for plan_bits' sensitivity runs
    progress: bool = True


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    apply: Callable[[nn.Module, Calibration], object]  # quantizes the model in place; returns a summary


def _quantize(config):
    return lambda model, calib: qtorch.quantize_(model, config)


def _static(model, calib):
    summary = qtorch.quantize_(model, W8A8StaticConfig())
    qtorch.calibrate(model, calib.batches, progress=calib.progress)
    return summary


def _smooth(config):
    def apply(model, calib):
        from qtorch.algorithms import smooth_quant_

        smooth_quant_(model, calib.batches, config)
        return _static(model, calib) if isinstance(config, W8A8StaticConfig) else qtorch.quantize_(model, config)
    return apply


def _awq(gptq: bool):
    def apply(model, calib):
        from qtorch.algorithms import awq_, quantize_gptq_

        awq_(model, calib.batches, W4_CLIP_CONFIG)
        if gptq:
            return quantize_gptq_(model, calib.batches, W4_CONFIG, progress=calib.progress)
        return qtorch.quantize_(model, W4_CLIP_CONFIG)
    return apply


def _gptq(model, calib):
    from qtorch.algorithms import quantize_gptq_

    return quantize_gptq_(model, calib.batches, W4_CONFIG, progress=calib.progress)


def _mixed(budget: float, group_sizes: tuple[int, ...]):
    """AWQ scaling (α searched per input on calibration data, α = 0 = none), then plan_bits chooses per layer among
    GPTQ int4 of each group size and int8 by the output noise of that layer's own GPTQ (or int8) weights alone on
    calibration sentences, then quantize_plan_ runs GPTQ for the int4 layers with the int8 layers in place."""
    def apply(model, calib):
        from qtorch.algorithms import awq_, quantize_plan_

        awq_(model, calib.batches, W4_CLIP_CONFIG)
        candidates = tuple(qtorch.GPTQCandidate(GroupWeightOnlyConfig(bits=4, group_size=g, symmetric=False))
                           for g in group_sizes) + (Int8WeightOnlyConfig(),)
        plan = qtorch.plan_bits(model, calib.plan_inputs, budget, candidates, batches=calib.batches,
                                progress=calib.progress)
        return quantize_plan_(model, plan, calib.batches, progress=calib.progress)
    return apply


SCHEMES = {s.name: s for s in (
    Scheme("w8a8", "int8 weights per channel x int8 activations per token (dynamic)", _quantize(W8A8DynamicConfig())),
    Scheme("w8a8-static", "int8 weights x int8 activations, calibrated per-tensor (S_X, Z_X)", _static),
    Scheme("w8a8-sq", "w8a8 after SmoothQuant (alpha searched per input on calibration data)",
           _smooth(W8A8DynamicConfig())),
    Scheme("w8a8-static-sq", "w8a8-static after SmoothQuant (alpha searched per input on calibration data)",
           _smooth(W8A8StaticConfig())),
    Scheme("w8a16", "int8 weights per channel, float activations", _quantize(Int8WeightOnlyConfig())),
    Scheme("w4a16", "int4 weights per group of 128 (asymmetric, round-to-nearest)", _quantize(W4_CONFIG)),
    Scheme("w4a16-clip", "int4 g128 with a per-group clipping search",
           _quantize(W4_CLIP_CONFIG)),
    Scheme("w4a16-gptq", "int4 g128, weights calibrated by GPTQ", _gptq),
    Scheme("w4a16-awq", "int4 g128, AWQ scaling (alpha searched) then the clipping search", _awq(gptq=False)),
    Scheme("w4a16-awq-gptq", "int4 g128, AWQ scaling (alpha searched) then GPTQ", _awq(gptq=True)),
    Scheme("codebook4", "4-bit K-means codebook per output channel",
           _quantize(CodebookConfig(bits=4, max_iter=CODEBOOK_ITERATIONS))),
    *(Scheme(name, f"AWQ, then plan_bits: int4 (GPTQ, g{'/'.join(map(str, groups))}) or int8 per layer, "
                   f"<= {budget:g} bits/weight", _mixed(budget, groups))
      for name, (budget, groups) in MIXED_PLANS.items()),
)}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise ValueError(f"scheme: unknown {name!r}; valid: {', '.join(SCHEMES)}")
    return SCHEMES[name]
