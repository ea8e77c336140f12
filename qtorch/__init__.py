"""qtorch: quantized and mixed-precision deep learning for PyTorch on NVIDIA GPUs."""
import importlib

from qtorch._ext import cuda_kernels_available

__version__ = "0.1.0"

# Public names loaded on first use, so that `import qtorch` stays light (no torch, triton or CUDA extension).
_LAZY = {
    "quantize_": "qtorch.api", "dequantize_": "qtorch.api", "calibrate": "qtorch.api", "compare": "qtorch.api",
    "plan_bits": "qtorch.api", "save_quantized": "qtorch.api", "load_quantized": "qtorch.api",
    "load_config": "qtorch.api", "GPTQCandidate": "qtorch.api", "quantize_gptq_": "qtorch.algorithms",
    "quantize_plan_": "qtorch.algorithms",
    "QuantLinear": "qtorch.nn",
    "W8A8DynamicConfig": "qtorch.config", "W8A8StaticConfig": "qtorch.config", "Int8WeightOnlyConfig": "qtorch.config",
    "GroupWeightOnlyConfig": "qtorch.config", "CodebookConfig": "qtorch.config", "PerLayerConfig": "qtorch.config",
}

_SUBPACKAGES = ("amp", "analysis", "models", "ops", "quant")  # `qtorch.amp.MixedPrecision` after `import qtorch`

__all__ = ["cuda_kernels_available", *_LAZY, *_SUBPACKAGES]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"qtorch.{name}")
    raise AttributeError(f"module 'qtorch' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
