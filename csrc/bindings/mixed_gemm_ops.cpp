// CUDA implementations of the private ops qtorch::_mixed_gemm_cuda and qtorch::_dequant_tiled_cuda (schemas and fake
// impls: qtorch/ops/mixed_gemm.py; the public op qtorch::weight_only_linear routes to them for tiled weights).
// The op layer has validated shapes and dtypes; this checks what the kernels additionally rely on (device, contiguity,
// alignment), allocates the output and launches on the current stream: no host synchronisation, graph-capturable.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <string>

#include "mixed_gemm/mixed_gemm.h"

namespace {

// Numbers are formatted with std::to_string: `ostream << long` crashed inside this extension on the H200 image
// (csrc/bindings/int8_gemm_ops.cpp says more).
std::string num(int64_t v) { return std::to_string(v); }

// The kernels read the weights as 16-byte vectors (or TMA boxes): a contiguous view at another offset is copied.
at::Tensor aligned16(const at::Tensor& w) {
  return reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0 ? w : w.clone();
}

qtorch_mixed::MixedGemmParams make_params(const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zp,
                                          int64_t bits, int64_t group_size, int64_t K, at::ScalarType act) {
  TORCH_CHECK(w.is_cuda() && scale.device() == w.device() && zp.device() == w.device(),
              "qtorch::_mixed_gemm_cuda: w_q, w_scale and w_zp must be CUDA tensors on one device");
  TORCH_CHECK(w.scalar_type() == at::kInt && w.is_contiguous(), "w_q: expected a contiguous int32 tiled weight");
  TORCH_CHECK(scale.scalar_type() == at::kFloat && scale.is_contiguous() && zp.scalar_type() == at::kChar &&
                  zp.is_contiguous(),
              "w_scale / w_zp: expected contiguous float32 / int8 tensors");
  TORCH_CHECK(act == at::kBFloat16 || act == at::kHalf, "x: the mixed-input GEMM takes bfloat16 or float16");
  qtorch_mixed::MixedGemmParams p{};
  p.w = w.data_ptr<int32_t>();
  p.scale = scale.data_ptr<float>();
  p.zp = zp.data_ptr<int8_t>();
  p.N = static_cast<int>(scale.size(0));
  p.K = static_cast<int>(K);
  p.group_size = static_cast<int>(group_size);
  p.bits = static_cast<int>(bits);
  p.act = act == at::kBFloat16 ? qtorch_mixed::Act::kBF16 : qtorch_mixed::Act::kFP16;
  p.bias_kind = qtorch_mixed::BiasKind::kNone;
  const int ck = qtorch_mixed::tiled_chunk(p.bits);
  TORCH_CHECK(qtorch_mixed::can_implement(p), "qtorch::_mixed_gemm_cuda: unsupported shape: bits ", num(bits),
              ", K ", num(K), ", group_size ", num(group_size), " (K and the group size must be multiples of ",
              num(ck), ", or the group size equal to K)");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == (p.N + 15) / 16 && w.size(1) == static_cast<int64_t>(p.K / ck) * 128,
              "w_q: the tiled weight's shape does not match N = ", num(p.N), ", K = ", num(K));
  return p;
}

at::Tensor dequant_tiled(const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zp, int64_t bits,
                         int64_t group_size, int64_t K, at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(w.device());
  const at::Tensor w16 = aligned16(w);
  qtorch_mixed::MixedGemmParams p = make_params(w16, scale, zp, bits, group_size, K, dtype);
  at::Tensor out = at::empty({scale.size(0), K}, w.options().dtype(dtype));  // (N, K)
  if (out.numel() == 0) return out;
  p.y = out.data_ptr();
  const cudaError_t err = qtorch_mixed::launch_dequant_tiled(p, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "qtorch::_dequant_tiled_cuda: launch failed: ", cudaGetErrorString(err));
  return out;
}

// y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias in x's dtype. The runtime M picks the path (so a symbolic M under
// torch.compile needs no guard): M <= max_mixed_m dequantizes in registers (the mixed-input kernel), larger M
// dequantizes the weight once into an (N, K) temporary and multiplies with cuBLAS. max_mixed_m comes from the op
// layer's routing table (qtorch/ops).
at::Tensor mixed_gemm(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zp,
                      int64_t bits, int64_t group_size, const std::optional<at::Tensor>& bias, int64_t max_mixed_m) {
  TORCH_CHECK(x_in.is_cuda() && x_in.device() == w.device(), "x: expected a CUDA tensor on w_q's device");
  TORCH_CHECK(x_in.dim() == 2, "x: expected a 2-D tensor");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t M = x_in.size(0), K = x_in.size(1);
  const at::Tensor w16 = aligned16(w);
  qtorch_mixed::MixedGemmParams p = make_params(w16, scale, zp, bits, group_size, K, x_in.scalar_type());
  if (bias.has_value()) {
    TORCH_CHECK(bias->device() == x_in.device() && bias->dim() == 1 && bias->size(0) == p.N && bias->is_contiguous(),
                "bias: expected a contiguous (N,) tensor on x's device");
    TORCH_CHECK(bias->scalar_type() == x_in.scalar_type() || bias->scalar_type() == at::kFloat,
                "bias: expected x's dtype or float32");
  }
  if (M > max_mixed_m) {
    const at::Tensor w_hat = dequant_tiled(w16, scale, zp, bits, group_size, K, x_in.scalar_type());  // (N, K)
    if (!bias.has_value()) return at::mm(x_in, w_hat.t());
    return at::addmm(bias->to(x_in.scalar_type()), x_in, w_hat.t());
  }
  // 16-byte vector loads and TMA boxes of x rows: unit column stride, rows apart by at least K elements (no expanded
  // or overlapping rows) and by a multiple of 8, aligned base.
  const bool aligned = x_in.stride(1) == 1 && x_in.stride(0) >= K && x_in.stride(0) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(x_in.data_ptr()) % 16 == 0;
  const at::Tensor x = aligned ? x_in : x_in.clone(at::MemoryFormat::Contiguous);
  // The warpgroup kernel copies each zero point's aligned 4-byte word: a 4-byte aligned base keeps it in bounds.
  const at::Tensor zp_words = reinterpret_cast<uintptr_t>(zp.data_ptr()) % 4 == 0 ? zp : zp.clone();
  p.zp = zp_words.data_ptr<int8_t>();
  at::Tensor y = at::empty({M, static_cast<int64_t>(p.N)}, x.options());
  if (M == 0) return y;
  p.x = x.data_ptr();
  p.x_stride = x.stride(0);
  p.M = static_cast<int>(M);
  p.y = y.data_ptr();
  if (bias.has_value()) {
    p.bias = bias->data_ptr();
    p.bias_kind = bias->scalar_type() == at::kFloat ? qtorch_mixed::BiasKind::kFP32 : qtorch_mixed::BiasKind::kAct;
  }
  const cudaError_t err = qtorch_mixed::launch_mixed_gemm(p, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "qtorch::_mixed_gemm_cuda: launch failed: ", cudaGetErrorString(err));
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(qtorch, CUDA, m) {
  m.impl("_mixed_gemm_cuda", &mixed_gemm);
  m.impl("_dequant_tiled_cuda", &dequant_tiled);
}
