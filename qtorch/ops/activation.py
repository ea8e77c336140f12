"""qtorch::quantize_per_token and qtorch::quantize_per_tensor — int8 quantization of activations (asymmetric).

quantize_per_token (dynamic), per row m of x (M, K):  r_min = min(min_k x, 0), r_max = max(max_k x, 0),
  S[m] = (r_max − r_min) / 255,  Z[m] = clamp(round(−128 − r_min / S), −128, 127),
  q[m, k] = clamp(round(x[m, k] / S[m]) + Z[m], −128, 127).
quantize_per_tensor (static, calibrated (S, Z) given as (1,) tensors): q[m, k] = clamp(round(x[m, k] / S) + Z, −128,
  127), and row_scale[m] = S for a finite row, NaN otherwise: the int8 GEMM multiplies by it, so a non-finite input
  row gives a NaN output row as in the dynamic layer (whose NaN scale does the same).
Backends of quantize_per_token: in a graph traced for torch.compile on the CPU (on CUDA when forced: measured slower
there), the same formula in aten ops (qtorch.ops.fused_quant), which Inductor fuses into the kernel producing x; the
CUDA kernel of qtorch._C (csrc/act_quant), preferred in eager calls up to EAGER_KERNEL_MAX_M rows, where the host
time of a launch decides (one C++ launch instead of the Triton launcher); the Triton kernel (triton_kernels.act_quant,
faster on the GPU from M = 128 and the compiled choice); the reference (CPU, and on CUDA without qtorch._C or
triton, said once). Every backend is bit-exact with the reference. quantize_per_tensor runs the CUDA kernel of
qtorch._C on CUDA. NaN in a row
gives a NaN scale (so the layer output is NaN there) rather than an error: checking would need a host
synchronisation per call.
"""
import torch
from torch._subclasses.fake_tensor import is_fake

from qtorch.ops._checks import ACT_DTYPES, check_matrix, check_vector
from qtorch.ops import routing
from qtorch.ops._registry import (LIB, NO_EXTENSION, extension_ready, reference_backend, reference_on_cuda,
                                  triton_ready)
from qtorch.ops.fused_quant import once_per_traced_value, quantize_per_token_fusable
from qtorch.quant.affine import qparams_from_minmax, quantize

# CUDA kernels: qtorch._C (csrc/bindings/act_quant_ops.cpp)
LIB.define("_quantize_per_token_cuda(Tensor x) -> (Tensor, Tensor, Tensor)")
LIB.define("_quantize_per_tensor_cuda(Tensor x, Tensor scale, Tensor zero_point) -> (Tensor, Tensor)")


def quantize_per_token_reference(x: torch.Tensor):
    """PyTorch reference: (q (M, K) int8, scale (M,) fp32, zero_point (M,) int32)."""
    scale, zero_point = qparams_from_minmax(x.amin(dim=1), x.amax(dim=1), 8)  # (M,), (M,)
    q = quantize(x, scale[:, None], zero_point[:, None], 8, allow_nonfinite=True)  # (M, K) int8
    return q, scale, zero_point


def check_quantize_per_token(x) -> None:
    """The contract: x (M, K) bf16/fp16/fp32 with K ≥ 1."""
    check_matrix("x", x, ACT_DTYPES)
    if x.shape[1] == 0:
        raise ValueError("x: expected at least one column (K ≥ 1)")


# Largest M for which an eager quantize_per_token call prefers the C++ kernel (H200: W8A8 M = 1 9.3 us either way,
# the kernel 3x slower than Triton's at M = 2048, benchmarks/NOTES.md "activation quantization in CUDA").
EAGER_KERNEL_MAX_M = 64


def _cuda_kernel(x):
    return torch.ops.qtorch._quantize_per_token_cuda.default(x)


def _triton(x):
    from triton_kernels.act_quant import quantize_per_token as launch

    return launch(x)


def _traced(traced: bool, **meta) -> tuple[bool, str]:
    return routing.YES if traced else (False, "runs only in graphs traced for torch.compile (fake inputs)")


routing.register_backends("quantize_per_token", [
    # Preferred on the CPU only: on the H200 the fused form made the compiled 7B-shaped W8A8 prefill slower than one
    # Triton pass per layer (1.33x vs 1.50x bf16, benchmarks/NOTES.md "fused activation quantization").
    routing.Backend("fusable", ("cpu", "cuda"), _traced, quantize_per_token_fusable,
                    preferred=lambda device, **meta: device == "cpu"),
    reference_backend(quantize_per_token_reference),
    routing.Backend("cuda_kernel", ("cuda",), extension_ready, _cuda_kernel,
                    preferred=lambda traced, small_m, **meta: small_m and not traced),
    routing.Backend("triton", ("cuda", "cpu"), lambda device, **meta: triton_ready(device), _triton),
    reference_on_cuda("quantize_per_token", quantize_per_token_reference,
                      "neither qtorch._C nor triton is available"),
])


@torch.library.triton_op("qtorch::quantize_per_token", mutates_args=())
def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (M, K) bf16/fp16/fp32 -> q (M, K) int8, scale (M,) fp32, zero_point (M,) int32 (asymmetric, per row)."""
    check_quantize_per_token(x)
    # traced: AOTAutograd runs this body on fake tensors to decompose the op for Inductor
    traced = is_fake(x)
    small_m = not traced and x.shape[0] <= EAGER_KERNEL_MAX_M
    backend = routing.select("quantize_per_token", device=x.device.type, traced=traced, small_m=small_m)
    return once_per_traced_value(x, backend.run) if traced else backend.run(x)


def _per_token_outputs(x):
    """Empty (q (M, K) int8, scale (M,) fp32, zero_point (M,) int32) like quantize_per_token's."""
    m, k = x.shape
    return (x.new_empty((m, k), dtype=torch.int8), x.new_empty((m,), dtype=torch.float32),
            x.new_empty((m,), dtype=torch.int32))


@quantize_per_token.register_fake
def _(x):
    check_quantize_per_token(x)
    return _per_token_outputs(x)


torch.library.register_fake("qtorch::_quantize_per_token_cuda", _per_token_outputs, lib=LIB)


def quantize_per_tensor_reference(x, scale, zero_point):
    """PyTorch reference: (q (M, K) int8, row_scale (M,) fp32)."""
    q = quantize(x, scale, zero_point, 8, allow_nonfinite=True)  # (M, K) int8; a non-finite row's q unspecified
    row_scale = torch.where(torch.isfinite(x).all(dim=1), scale, float("nan"))  # (M,) S or NaN
    return q, row_scale


def check_quantize_per_tensor(x, scale, zero_point) -> None:
    """The contract: x (M, K) bf16/fp16/fp32 with K ≥ 1; scale (1,) fp32 and zero_point (1,) int32 on x's device."""
    check_quantize_per_token(x)
    check_vector("scale", scale, 1, (torch.float32,), x)
    check_vector("zero_point", zero_point, 1, (torch.int32,), x)


routing.register_backends("quantize_per_tensor", [
    reference_backend(quantize_per_tensor_reference),
    routing.Backend("cuda_kernel", ("cuda",), extension_ready,
                    lambda x, scale, zero_point: torch.ops.qtorch._quantize_per_tensor_cuda.default(x, scale,
                                                                                                     zero_point)),
    reference_on_cuda("quantize_per_tensor", quantize_per_tensor_reference, NO_EXTENSION),
])


@torch.library.custom_op("qtorch::quantize_per_tensor", mutates_args=())
def quantize_per_tensor(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) -> q (M, K) int8 = clamp(round(x / S) + Z, −128, 127), row_scale (M,) fp32 = S (NaN: non-finite row)."""
    check_quantize_per_tensor(x, scale, zero_point)
    return routing.select("quantize_per_tensor", device=x.device.type).run(x, scale, zero_point)


def _per_tensor_outputs(x, scale, zero_point):
    """Empty (q (M, K) int8, row_scale (M,) fp32) like quantize_per_tensor's."""
    m, k = x.shape
    return x.new_empty((m, k), dtype=torch.int8), x.new_empty((m,), dtype=torch.float32)


@quantize_per_tensor.register_fake
def _(x, scale, zero_point):
    check_quantize_per_tensor(x, scale, zero_point)
    return _per_tensor_outputs(x, scale, zero_point)


torch.library.register_fake("qtorch::_quantize_per_tensor_cuda", _per_tensor_outputs, lib=LIB)
