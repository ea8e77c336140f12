"""qtorch:: custom ops: one way in for each operation (schema, CPU reference, fake impl, CUDA kernel).

Importing this package defines every op, then loads the CUDA extension qtorch._C (whose import registers the CUDA
kernels of int8_scaled_mm and int8_linear_requant); without it the references serve CUDA with a one-time warning.
"""
import torch

from qtorch._ext import load_extension
from qtorch.ops import activation, codebook, group, int8_matmul, mixed_gemm  # noqa: F401  (defines the ops)
from qtorch.ops import autograd  # noqa: F401  (registers the backward of the linear ops)

if not load_extension():
    int8_matmul.register_cuda_fallback()

quantize_per_token = torch.ops.qtorch.quantize_per_token
int8_scaled_mm = torch.ops.qtorch.int8_scaled_mm
int8_linear_requant = torch.ops.qtorch.int8_linear_requant
group_quantize = torch.ops.qtorch.group_quantize
group_dequantize = torch.ops.qtorch.group_dequantize
weight_only_linear = torch.ops.qtorch.weight_only_linear
codebook_linear = torch.ops.qtorch.codebook_linear

__all__ = ["quantize_per_token", "int8_scaled_mm", "int8_linear_requant", "group_quantize", "group_dequantize",
           "weight_only_linear", "codebook_linear"]
