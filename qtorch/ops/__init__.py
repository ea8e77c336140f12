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
from qtorch.ops._registry import register_eager_kernels
from qtorch.ops.routing import force_backend

# Eager dispatch straight to each op's body (qtorch.ops._registry.register_eager_kernels); the two linear ops with a
# backward formula keep their autograd layer.
for _op in (activation.quantize_per_token, activation.quantize_per_tensor, int8_matmul.int8_scaled_mm, int8_matmul.int8_linear_requant,
            group.group_quantize, group.group_dequantize):
    register_eager_kernels(_op)
for _op in (weight_only.weight_only_linear, codebook.codebook_linear):
    register_eager_kernels(_op, differentiable=True)

load_extension()

# The OpOverloads (not the packets): a call skips the packet's overload resolution.
quantize_per_token = torch.ops.qtorch.quantize_per_token.default
quantize_per_tensor = torch.ops.qtorch.quantize_per_tensor.default
int8_scaled_mm = torch.ops.qtorch.int8_scaled_mm.default
int8_linear_requant = torch.ops.qtorch.int8_linear_requant.default
group_quantize = torch.ops.qtorch.group_quantize.default
group_dequantize = torch.ops.qtorch.group_dequantize.default
weight_only_linear = torch.ops.qtorch.weight_only_linear.default
codebook_linear = torch.ops.qtorch.codebook_linear.default

__all__ = ["force_backend", "quantize_per_token", "quantize_per_tensor", "int8_scaled_mm", "int8_linear_requant", "group_quantize", "group_dequantize",
           "weight_only_linear", "codebook_linear"]
