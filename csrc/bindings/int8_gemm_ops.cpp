// CUDA kernels of the private ops qtorch::_int8_scaled_mm_cuda and qtorch::_int8_linear_requant_cuda (schemas and the
// routing of the public ops qtorch::int8_scaled_mm / int8_linear_requant to them: qtorch/ops/int8_matmul.py, which
// zero-pads shapes these kernels do not tile).
// Validates every argument (a clear TypeError / RuntimeError naming it; see below), allocates the output, picks the kernel plan by
// shape and device and launches on the current stream: no host synchronisation, no int32 intermediates in global
// memory, capturable in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <string>

#include "int8_gemm/int8_gemm.h"

namespace {

using qtorch_int8::EpilogueParams;

// Value checks raise through TORCH_CHECK (RuntimeError in Python), type checks through TORCH_CHECK_TYPE (TypeError).
// Messages never stream an integer: on the H200 image (torch 2.11+cu130, g++ 13, 2026-11-28) `ostream << long`
// inside this extension crashed (cuda-gdb: SIGSEGV in basic_ostream::_M_insert<long>, an instantiation resolved in
// qtorch/_C.so itself), so numbers are formatted with std::to_string (num, dims) and only strings are streamed.
std::string num(int64_t value) { return std::to_string(value); }

std::string dims(c10::IntArrayRef values) {
  std::string s = "(";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + (values.size() == 1 ? ",)" : ")");
}

void check_on_device(const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda(), name, ": expected a CUDA tensor, got one on ", t.device());
  TORCH_CHECK(t.device() == like.device(), name, ": expected a tensor on ", like.device(), ", got ", t.device());
}

// x_q / w_q: 2-D int8, contiguous, 16-byte aligned (TMA and 16-byte vector loads), K a positive multiple of 16.
void check_matrix(const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kChar, name, ": expected dtype int8, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2, name, ": expected a 2-D tensor, got shape ", dims(t.sizes()));
  check_on_device(name, t, like);
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous (row-major) tensor, got strides ", dims(t.strides()));
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0, name,
                    ": expected a 16-byte aligned data pointer (the kernels load 16-byte vectors); "
                    "pass a freshly allocated or .clone()d tensor");
  TORCH_CHECK(t.size(0) <= INT32_MAX && t.size(1) <= INT32_MAX, name, ": dimensions above 2^31 are not supported, got ",
                    dims(t.sizes()));
}

void check_vector(const char* name, const at::Tensor& t, int64_t length, at::ScalarType dtype, const at::Tensor& like) {
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == length, name, ": expected shape (", num(length), ",), got ", dims(t.sizes()));
  check_on_device(name, t, like);
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor, got strides ", dims(t.strides()));
}

// A per-row activation parameter: (M,) per row, or (1,) one value for every row (static, per tensor: the kernels
// read element 0, no per-call expansion). Returns whether it is per tensor.
bool check_row_param(const char* name, const at::Tensor& t, int64_t M, at::ScalarType dtype, const at::Tensor& like) {
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && (t.size(0) == M || t.size(0) == 1), name, ": expected shape (", num(M),
              ",) per row or (1,) per tensor, got ", dims(t.sizes()));
  check_on_device(name, t, like);
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor, got strides ", dims(t.strides()));
  return t.size(0) == 1;
}

// Shared checks of both ops; returns (M, N, K).
void check_operands(const at::Tensor& x_q, const at::Tensor& w_q, int64_t& M, int64_t& N, int64_t& K) {
  check_matrix("x_q", x_q, x_q);
  check_matrix("w_q", w_q, x_q);
  M = x_q.size(0);
  K = x_q.size(1);
  N = w_q.size(0);
  TORCH_CHECK(w_q.size(1) == K, "w_q: expected ", num(K), " columns (x_q has K = ", num(K), "), got shape ", dims(w_q.sizes()));
  TORCH_CHECK(K >= 16 && K % 16 == 0, "x_q: K must be a positive multiple of 16 for the int8 kernels, got K = ", num(K),
                    " (pad K with zeros in both x_q and w_q)");
  TORCH_CHECK(N % 16 == 0, "w_q: N (output channels) must be a multiple of 16 for the int8 kernels, got N = ", num(N),
                    " (pad the weight rows)");
}

qtorch_int8::LaunchPlan plan_for(const at::Tensor& x_q, int64_t M, int64_t N, int64_t K, const char* op) {
  const cudaDeviceProp* prop = at::cuda::getDeviceProperties(x_q.get_device());
  const qtorch_int8::LaunchPlan plan = qtorch_int8::choose_plan(static_cast<int>(M), static_cast<int>(N),
                                                                static_cast<int>(K), prop->major, prop->minor,
                                                                prop->multiProcessorCount);
  TORCH_CHECK(plan.kernel != qtorch_int8::Kernel::kNone, op, ": qtorch's int8 kernels are built for sm_80 (runs on 8.x) ",
              "and sm_90a; ", prop->name, " has compute capability ", num(prop->major), ".", num(prop->minor));
  return plan;
}

void launch(const at::Tensor& x_q, const at::Tensor& w_q, const EpilogueParams& epi,
            const qtorch_int8::LaunchPlan& plan, const char* op) {
  const qtorch_int8::GemmProblem problem{x_q.data_ptr<int8_t>(), w_q.data_ptr<int8_t>(), epi};
  const cudaError_t err = qtorch_int8::launch_int8_gemm(problem, plan, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, op, ": launching kernel ", qtorch_int8::kernel_name(plan.kernel), " (split_k ",
              num(plan.split_k), ") failed: ", cudaGetErrorString(err));
}

EpilogueParams base_params(const at::Tensor& out, int64_t M, int64_t N, int64_t K) {
  EpilogueParams e{};
  e.out = out.data_ptr();
  e.M = static_cast<int32_t>(M);
  e.N = static_cast<int32_t>(N);
  e.K = static_cast<int32_t>(K);
  e.bias_kind = qtorch_int8::kBiasNone;
  return e;
}

// y (M, N) out_dtype = float(acc - Z_X colsum_W [- Z_W rowsum_X + K Z_X Z_W]) * (S_X S_W) + bias;
// S_X, Z_X per row (M,) or per tensor (1,)
at::Tensor int8_scaled_mm_cuda(const at::Tensor& x_q, const at::Tensor& x_scale, const at::Tensor& x_zp,
                               const at::Tensor& w_q, const at::Tensor& w_scale, const at::Tensor& w_colsum,
                               const std::optional<at::Tensor>& w_zp, const std::optional<at::Tensor>& bias,
                               at::ScalarType out_dtype) {
  int64_t M, N, K;
  check_operands(x_q, w_q, M, N, K);
  const bool scale_per_tensor = check_row_param("x_scale", x_scale, M, at::kFloat, x_q);
  const bool zp_per_tensor = check_row_param("x_zp", x_zp, M, at::kInt, x_q);
  check_vector("w_scale", w_scale, N, at::kFloat, x_q);
  check_vector("w_colsum", w_colsum, N, at::kInt, x_q);
  if (w_zp.has_value()) check_vector("w_zp", *w_zp, N, at::kInt, x_q);
  int32_t bias_kind = qtorch_int8::kBiasNone;
  if (bias.has_value()) {
    const at::ScalarType bt = bias->scalar_type();
    TORCH_CHECK_TYPE(bt == at::kFloat || bt == at::kBFloat16 || bt == at::kHalf,
                     "bias: expected dtype bfloat16, float16 or float32, got ", bt);
    check_vector("bias", *bias, N, bt, x_q);
    bias_kind = bt == at::kFloat ? qtorch_int8::kBiasFP32 : (bt == at::kBFloat16 ? qtorch_int8::kBiasBF16 : qtorch_int8::kBiasFP16);
  }
  int32_t out_kind;
  switch (out_dtype) {
    case at::kBFloat16: out_kind = qtorch_int8::kOutBF16; break;
    case at::kHalf: out_kind = qtorch_int8::kOutFP16; break;
    case at::kFloat: out_kind = qtorch_int8::kOutFP32; break;
    default: TORCH_CHECK_TYPE(false, "out_dtype: expected bfloat16, float16 or float32, got ", out_dtype);
  }

  const c10::cuda::CUDAGuard guard(x_q.device());
  at::Tensor y = at::empty({M, N}, x_q.options().dtype(out_dtype));
  if (M == 0 || N == 0) return y;
  const qtorch_int8::LaunchPlan plan = plan_for(x_q, M, N, K, "qtorch::int8_scaled_mm");
  EpilogueParams e = base_params(y, M, N, K);
  e.out_kind = out_kind;
  e.x_scale = x_scale.data_ptr<float>();
  e.x_zp = x_zp.data_ptr<int32_t>();
  e.x_scale_per_tensor = scale_per_tensor ? 1 : 0;
  e.x_zp_per_tensor = zp_per_tensor ? 1 : 0;
  e.w_scale = w_scale.data_ptr<float>();
  e.w_colsum = w_colsum.data_ptr<int32_t>();
  e.w_zp = w_zp.has_value() ? w_zp->data_ptr<int32_t>() : nullptr;
  e.bias = bias.has_value() ? bias->data_ptr() : nullptr;
  e.bias_kind = bias_kind;
  launch(x_q, w_q, e, plan, "qtorch::int8_scaled_mm");
  return y;
}

// q_y (M, N) int8 = requantize(acc [- Z_W rowsum_X] - Z_X colsum_W [+ K Z_X Z_W] + bias_q, M0, n, Z_Y);
// no w_zp: Z_W = 0 (no row sums)
at::Tensor int8_linear_requant_cuda(const at::Tensor& x_q, int64_t x_zp, const at::Tensor& w_q,
                                    const std::optional<at::Tensor>& w_zp,
                                    const at::Tensor& w_colsum, const std::optional<at::Tensor>& bias_q,
                                    const at::Tensor& multiplier, const at::Tensor& shift, int64_t y_zp) {
  int64_t M, N, K;
  check_operands(x_q, w_q, M, N, K);
  if (w_zp.has_value()) check_vector("w_zp", *w_zp, N, at::kInt, x_q);
  check_vector("w_colsum", w_colsum, N, at::kInt, x_q);
  if (bias_q.has_value()) check_vector("bias_q", *bias_q, N, at::kInt, x_q);
  check_vector("multiplier", multiplier, N, at::kInt, x_q);
  check_vector("shift", shift, N, at::kInt, x_q);
  TORCH_CHECK(-128 <= x_zp && x_zp <= 127, "x_zp: expected an int8 zero point in [-128, 127], got ", num(x_zp));
  TORCH_CHECK(-128 <= y_zp && y_zp <= 127, "y_zp: expected an int8 zero point in [-128, 127], got ", num(y_zp));

  const c10::cuda::CUDAGuard guard(x_q.device());
  at::Tensor y = at::empty({M, N}, x_q.options().dtype(at::kChar));
  if (M == 0 || N == 0) return y;
  const qtorch_int8::LaunchPlan plan = plan_for(x_q, M, N, K, "qtorch::int8_linear_requant");
  EpilogueParams e = base_params(y, M, N, K);
  e.out_kind = qtorch_int8::kOutInt8Requant;
  e.x_zp = nullptr;
  e.x_zp_scalar = static_cast<int32_t>(x_zp);
  e.w_colsum = w_colsum.data_ptr<int32_t>();
  e.w_zp = w_zp.has_value() ? w_zp->data_ptr<int32_t>() : nullptr;
  e.bias = bias_q.has_value() ? bias_q->data_ptr() : nullptr;
  e.bias_kind = bias_q.has_value() ? qtorch_int8::kBiasInt32 : qtorch_int8::kBiasNone;
  e.multiplier = multiplier.data_ptr<int32_t>();
  e.shift = shift.data_ptr<int32_t>();
  e.y_zp = static_cast<int32_t>(y_zp);
  launch(x_q, w_q, e, plan, "qtorch::int8_linear_requant");
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(qtorch, CUDA, m) {
  m.impl("_int8_scaled_mm_cuda", &int8_scaled_mm_cuda);
  m.impl("_int8_linear_requant_cuda", &int8_linear_requant_cuda);
}
