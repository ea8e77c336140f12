// CUDA implementations of the private ops qtorch::_quantize_per_token_cuda and qtorch::_quantize_per_tensor_cuda
// (schemas and fake impls: qtorch/ops/activation.py; the public ops qtorch::quantize_per_token and
// qtorch::quantize_per_tensor route to them). The op layer has validated shapes and dtypes; this checks what the
// kernels rely on (device, unit column stride), allocates the outputs and launches on the current stream: no host
// synchronisation, graph-capturable.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "act_quant/act_quant.h"

namespace {

qtorch_act::ActQuantParams make_params(const at::Tensor& x_in, at::Tensor& x) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 2 && x_in.size(1) > 0, "x: expected a (M, K) CUDA tensor with K >= 1");
  const at::ScalarType t = x_in.scalar_type();
  TORCH_CHECK(t == at::kBFloat16 || t == at::kHalf || t == at::kFloat, "x: expected bfloat16, float16 or float32");
  x = x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  qtorch_act::ActQuantParams p{};
  p.x = x.data_ptr();
  p.x_stride = x.stride(0);
  p.M = static_cast<int>(x.size(0));
  p.K = static_cast<int>(x.size(1));
  p.dtype = t == at::kBFloat16 ? qtorch_act::Dtype::kBF16 : t == at::kHalf ? qtorch_act::Dtype::kFP16
                                                                            : qtorch_act::Dtype::kFP32;
  return p;
}

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "qtorch::", op, ": launch failed: ", cudaGetErrorString(err));
}

// x (M, K) -> q (M, K) int8, S (M,) fp32, Z (M,) int32 per row (act_quant.h).
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_per_token(const at::Tensor& x_in) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor x;
  qtorch_act::ActQuantParams p = make_params(x_in, x);
  at::Tensor q = at::empty({x.size(0), x.size(1)}, x.options().dtype(at::kChar));
  at::Tensor scale = at::empty({x.size(0)}, x.options().dtype(at::kFloat));
  at::Tensor zero_point = at::empty({x.size(0)}, x.options().dtype(at::kInt));
  p.q = q.data_ptr<int8_t>();
  p.scale = scale.data_ptr<float>();
  p.zero_point = zero_point.data_ptr<int32_t>();
  check_launch(qtorch_act::launch_quantize_per_token(p, at::cuda::getCurrentCUDAStream()), "_quantize_per_token_cuda");
  return {q, scale, zero_point};
}

// x (M, K), S (1,) fp32, Z (1,) int32 -> q (M, K) int8, row_scale (M,) fp32 (S, or NaN for a non-finite row).
std::tuple<at::Tensor, at::Tensor> quantize_per_tensor(const at::Tensor& x_in, const at::Tensor& scale,
                                                       const at::Tensor& zero_point) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  TORCH_CHECK(scale.device() == x_in.device() && scale.scalar_type() == at::kFloat && scale.numel() == 1,
              "scale: expected a (1,) float32 tensor on x's device");
  TORCH_CHECK(zero_point.device() == x_in.device() && zero_point.scalar_type() == at::kInt && zero_point.numel() == 1,
              "zero_point: expected a (1,) int32 tensor on x's device");
  at::Tensor x;
  qtorch_act::ActQuantParams p = make_params(x_in, x);
  at::Tensor q = at::empty({x.size(0), x.size(1)}, x.options().dtype(at::kChar));
  at::Tensor row_scale = at::empty({x.size(0)}, x.options().dtype(at::kFloat));
  p.q = q.data_ptr<int8_t>();
  p.scale = row_scale.data_ptr<float>();
  p.s_in = scale.data_ptr<float>();
  p.z_in = zero_point.data_ptr<int32_t>();
  check_launch(qtorch_act::launch_quantize_per_tensor(p, at::cuda::getCurrentCUDAStream()),
               "_quantize_per_tensor_cuda");
  return {q, row_scale};
}

}  // namespace

TORCH_LIBRARY_IMPL(qtorch, CUDA, m) {
  m.impl("_quantize_per_token_cuda", &quantize_per_token);
  m.impl("_quantize_per_tensor_cuda", &quantize_per_tensor);
}
