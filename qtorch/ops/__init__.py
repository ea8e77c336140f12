"""qtorch:: custom ops: one way in for each operation (schema, CPU reference, fake impl, CUDA kernel).

Importing this package defines every op and its routing table (qtorch.ops.routing), then loads the CUDA extension
qtorch._C (whose import registers the CUDA kernels of the private ops qtorch::_int8_scaled_mm_cuda and
qtorch::_int8_linear_requant_cuda, and the mixed-input GEMM of qtorch.ops.mixed_gemm); without it the references and
the Triton kernels serve CUDA, said once where slow.
"""
import torch

from qtorch._ext import load_extension
from qtorch.ops import activation, codebook, group, int8_matmul, mixed_gemm, weight_only  # noqa: F401  (defines the ops)
from qtorch.ops import autograd  # noqa: F401  (registers the backward of the linear ops)
from qtorch.ops.routing import force_backend

load_extension()

quantize_per_token = torch.ops.qtorch.quantize_per_token
int8_scaled_mm = torch.ops.qtorch.int8_scaled_mm
int8_linear_requant = torch.ops.qtorch.int8_linear_requant
group_quantize = torch.ops.qtorch.group_quantize
group_dequantize = torch.ops.qtorch.group_dequantize
weight_only_linear = torch.ops.qtorch.weight_only_linear
codebook_linear = torch.ops.qtorch.codebook_linear

__all__ = ["force_backend", "quantize_per_token", "int8_scaled_mm", "int8_linear_requant", "group_quantize", "group_dequantize",
           "weight_only_linear", "codebook_linear"]
