"""Calibration algorithms: GPTQ for low-bit weights (on a weight matrix and over a whole model); SmoothQuant and AWQ,
per-input-channel scalings applied to the float model before quantize_ / quantize_gptq_."""
from qtorch.algorithms.apply import quantize_gptq_, quantize_plan_
from qtorch.algorithms.awq import awq_, awq_scale
from qtorch.algorithms.gptq import GroupQuantizedWeight, HessianAccumulator, gptq_quantize_weight, rtn_quantize_weight
from qtorch.algorithms.input_scaling import InputScaledLinear
from qtorch.algorithms.sequential import gptq_quantize_model, linear_stages, stage_of
from qtorch.algorithms.smoothquant import smooth_quant_, smoothing_scale

__all__ = ["quantize_gptq_", "quantize_plan_", "GroupQuantizedWeight", "HessianAccumulator", "gptq_quantize_weight",
           "rtn_quantize_weight", "gptq_quantize_model", "linear_stages", "stage_of", "smooth_quant_", "smoothing_scale",
           "awq_", "awq_scale", "InputScaledLinear"]
