"""Quantization primitives in pure PyTorch: the reference math every kernel of qtorch must agree with."""
from qtorch.quant.affine import (
    GRANULARITIES,
    QuantizedTensor,
    compute_qparams,
    dequantize,
    fake_quantize,
    qparams_from_absmax,
    qparams_from_minmax,
    quantize,
    quantize_tensor,
)
from qtorch.quant.fixed_point import quantize_multiplier, requantize, rounding_divide_by_pot, srdhm
from qtorch.quant.integer_linear import IntegerLinear, integer_linear, integer_linear_int64, prepare_integer_linear
from qtorch.quant.kmeans import kmeans_dequantize, kmeans_quantize
from qtorch.quant.metrics import reconstruction_error, relative_error, sqnr_db
from qtorch.quant.packing import container_bits, pack, unpack
from qtorch.quant.ranges import qrange

__all__ = [
    "GRANULARITIES", "QuantizedTensor", "compute_qparams", "dequantize", "fake_quantize", "qparams_from_absmax",
    "qparams_from_minmax", "quantize", "quantize_tensor", "quantize_multiplier", "requantize",
    "rounding_divide_by_pot", "srdhm", "IntegerLinear", "integer_linear", "integer_linear_int64",
    "prepare_integer_linear", "kmeans_dequantize", "kmeans_quantize", "reconstruction_error", "relative_error",
    "sqnr_db", "container_bits", "pack", "unpack", "qrange",
]
