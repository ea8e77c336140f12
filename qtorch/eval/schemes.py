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
  fp8-sim     FP8 e4m3 row-wise weights × e4m3 per-token activations, simulated in PyTorch (qtorch.eval.fp8_sim):
              the accuracy of the FP8 alternative to W8A8 on Hopper (torch._scaled_mm row-wise)
Asymmetric int4 is used throughout: on MiniLM it keeps 0.961 mean cosine where symmetric int4 keeps 0.942.
This is the one registry of scheme names: the demo, the evaluation, `qtorch bench` (SPEED_SCHEMES) and the analysis
summary (Scheme.weight_format: the qtorch.analysis storage format of the scheme's layers) read it.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn as nn

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, QuantConfig,
                           W8A8DynamicConfig, W8A8StaticConfig)

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
    config: QuantConfig | None = None  # the config of every layer it makes (None: per layer, e.g. mixed5)

    @property
    def weight_format(self) -> str | None:
        """The qtorch.analysis weight format that predicts the storage of the scheme's layers (None: not predicted,
        e.g. static layers also store calibrated activation constants)."""
        if isinstance(self.config, W8A8DynamicConfig):
            return "w8a8"
        if isinstance(self.config, Int8WeightOnlyConfig):
            return "int8-weight-only"
        if isinstance(self.config, GroupWeightOnlyConfig):
            return f"int{self.config.bits}-g{self.config.group_size}"
        return None


def _quantize(config):
    return lambda model, calib: qtorch.quantize_(model, config)


def _single(name: str, description: str, config, apply=None) -> "Scheme":
    """A scheme whose layers all take `config` (applied by quantize_ unless `apply` says how)."""
    return Scheme(name, description, apply or _quantize(config), config)


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


def _fp8_sim(model, calib):
    from qtorch.eval.fp8_sim import simulate_fp8_rowwise_

    simulate_fp8_rowwise_(model)


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


CODEBOOK_CONFIG = CodebookConfig(bits=4, max_iter=CODEBOOK_ITERATIONS)
SCHEMES = {s.name: s for s in (
    _single("w8a8", "int8 weights per channel x int8 activations per token (dynamic)", W8A8DynamicConfig()),
    _single("w8a8-static", "int8 weights x int8 activations, calibrated per-tensor (S_X, Z_X)", W8A8StaticConfig(),
            _static),
    _single("w8a8-sq", "w8a8 after SmoothQuant (alpha searched per input on calibration data)", W8A8DynamicConfig(),
            _smooth(W8A8DynamicConfig())),
    _single("w8a8-static-sq", "w8a8-static after SmoothQuant (alpha searched per input on calibration data)",
            W8A8StaticConfig(), _smooth(W8A8StaticConfig())),
    _single("w8a16", "int8 weights per channel, float activations", Int8WeightOnlyConfig()),
    _single("w4a16", "int4 weights per group of 128 (asymmetric, round-to-nearest)", W4_CONFIG),
    _single("w4a16-clip", "int4 g128 with a per-group clipping search", W4_CLIP_CONFIG),
    _single("w4a16-gptq", "int4 g128, weights calibrated by GPTQ", W4_CONFIG, _gptq),
    _single("w4a16-awq", "int4 g128, AWQ scaling (alpha searched) then the clipping search", W4_CLIP_CONFIG,
            _awq(gptq=False)),
    _single("w4a16-awq-gptq", "int4 g128, AWQ scaling (alpha searched) then GPTQ", W4_CONFIG, _awq(gptq=True)),
    _single("codebook4", "4-bit K-means codebook per output channel", CODEBOOK_CONFIG),
    Scheme("fp8-sim", "FP8 e4m3 weights per channel x e4m3 activations per token (simulated)", _fp8_sim),
    *(Scheme(name, f"AWQ, then plan_bits: int4 (GPTQ, g{'/'.join(map(str, groups))}) or int8 per layer, "
                   f"<= {budget:g} bits/weight", _mixed(budget, groups))
      for name, (budget, groups) in MIXED_PLANS.items()),
)}
# The schemes `qtorch bench` times (one config each, with a torchao counterpart in qtorch_baselines/torchao.py).
SPEED_SCHEMES = ("w8a8", "w4a16", "w8a16")


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise ValueError(f"scheme: unknown {name!r}; valid: {', '.join(SCHEMES)}")
    return SCHEMES[name]
