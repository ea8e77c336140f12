"""Private ops of the mixed-input GEMM kernels in qtorch._C (csrc/mixed_gemm), called only by qtorch::weight_only_linear
and qtorch::group_dequantize for weights in the tiled layout (qtorch.quant.layout.LAYOUT_TILED).

qtorch::_mixed_gemm_cuda(x (M, K) bf16/fp16, w_q tiled int32, w_scale (N, K/g) fp32, w_zp (N, K/g) int8, bits, g,
    bias (N,) | None, max_mixed_m) -> y (M, N) = x · (S (q − Z))ᵀ + bias in x's dtype; M <= max_mixed_m dequantizes
    in registers, larger M dequantizes once and multiplies with cuBLAS (chosen by the runtime M inside the kernel op).
qtorch::_dequant_tiled_cuda(w_q, w_scale, w_zp, bits, g, K, dtype) -> Ŵ (N, K) = S (q − Z) rounded once to dtype.
Schemas are defined here; the CUDA kernels register with TORCH_LIBRARY_IMPL when qtorch._C loads.
"""
import torch

from qtorch.ops._registry import LIB

LIB.define("_mixed_gemm_cuda(Tensor x, Tensor w_q, Tensor w_scale, Tensor w_zp, int bits, int group_size, "
           "Tensor? bias, int max_mixed_m) -> Tensor")
LIB.define("_dequant_tiled_cuda(Tensor w_q, Tensor w_scale, Tensor w_zp, int bits, int group_size, int K, "
           "ScalarType dtype) -> Tensor")


@torch.library.register_fake("qtorch::_mixed_gemm_cuda", lib=LIB)
def _(x, w_q, w_scale, w_zp, bits, group_size, bias, max_mixed_m):
    return x.new_empty((x.shape[0], w_scale.shape[0]))


@torch.library.register_fake("qtorch::_dequant_tiled_cuda", lib=LIB)
def _(w_q, w_scale, w_zp, bits, group_size, K, dtype):
    return w_q.new_empty((w_scale.shape[0], K), dtype=dtype)
