"""Quantized modules: QuantLinear and its schemes (one subclass per family of configs)."""
from qtorch.nn.base import QuantLinear
from qtorch.nn.codebook import CodebookLinear
from qtorch.nn.w8a8 import W8A8Linear
from qtorch.nn.w8a8_static import W8A8StaticLinear
from qtorch.nn.weight_only import WeightOnlyLinear

__all__ = ["QuantLinear", "W8A8Linear", "W8A8StaticLinear", "WeightOnlyLinear", "CodebookLinear"]
