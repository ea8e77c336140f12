"""Calibration algorithms for low-bit weights: GPTQ, on a weight matrix and over a whole model."""
from qtorch.algorithms.apply import quantize_gptq_
from qtorch.algorithms.gptq import GroupQuantizedWeight, HessianAccumulator, gptq_quantize_weight, rtn_quantize_weight
from qtorch.algorithms.sequential import gptq_quantize_model, linear_stages, stage_of

__all__ = ["quantize_gptq_", "GroupQuantizedWeight", "HessianAccumulator", "gptq_quantize_weight",
           "rtn_quantize_weight", "gptq_quantize_model", "linear_stages", "stage_of"]
