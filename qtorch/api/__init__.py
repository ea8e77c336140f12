"""The user-facing quantization API: quantize_, dequantize_, calibrate, compare, plan_bits and checkpoints."""
from qtorch.api.calibrate import calibrate
from qtorch.api.compare import CompareReport, compare
from qtorch.api.plan_bits import BitPlan, GPTQCandidate, plan_bits
from qtorch.api.quantize import QuantizeSummary, dequantize_, quantize_
from qtorch.api.serialization import load_config, load_quantized, quantized_config, save_quantized

__all__ = ["calibrate", "compare", "CompareReport", "plan_bits", "BitPlan", "GPTQCandidate", "quantize_", "dequantize_",
           "QuantizeSummary", "save_quantized", "load_quantized", "load_config", "quantized_config"]
