"""Quantized modules: QuantLinear and its schemes (one subclass per family of configs).

state_dict of each scheme (N = out_features, K = in_features, g = group size; every layer also has `bias` (N,)
float or absent and `qscheme`, its config as JSON bytes):
  W8A8Linear        (W8A8DynamicConfig)      w_q (N, K) int8, w_scale (N,) fp32, w_colsum (N,) int32
  W8A8StaticLinear  (W8A8StaticConfig)       the above + x_scale (1,) fp32, x_zp (1,) int32, calibrated () uint8;
                    output="int8" adds       y_scale (1,), y_zp (1,), w_zp (N,) int32, multiplier (N,) int32,
                                             shift (N,) int32, bias_q (N,) int32 (with a bias)
  WeightOnlyLinear  (Int8WeightOnlyConfig,   w_q (N, K/2) uint8 (int4) or (N, K) int8, w_scale (N, K/g) fp32,
                     GroupWeightOnlyConfig)  w_zp (N, K/g) int8 (per channel: g = K)
  CodebookLinear    (CodebookConfig)         indices (N, K·c/8) uint8 (c = 2, 4 or 8-bit container),
                                             codebook (N, K/g, 2^bits) fp32 (per channel: g = K)
"""
from qtorch.nn.base import QuantLinear
from qtorch.nn.codebook import CodebookLinear
from qtorch.nn.w8a8 import W8A8Linear
from qtorch.nn.w8a8_static import W8A8StaticLinear
from qtorch.nn.weight_only import WeightOnlyLinear

__all__ = ["QuantLinear", "W8A8Linear", "W8A8StaticLinear", "WeightOnlyLinear", "CodebookLinear"]
