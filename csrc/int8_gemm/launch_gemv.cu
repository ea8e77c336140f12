// Launcher of the small-M kernel (M <= 32, sm_80+): token tiles from M, weight rows per CTA from the plan.
#include "int8_gemm/int8_gemm.h"
#include "int8_gemm/kernel_gemv.cuh"
#include "int8_gemm/launch_util.h"

namespace qtorch_int8 {

namespace {

template <int NT, int RB>
cudaError_t launch_gemv_tile(const GemmProblem& pb, cudaStream_t stream) {
  using T = GemvTile<NT, RB>;
  GemvArgs args;
  args.x = pb.x;
  args.w = pb.w;
  args.epi = pb.epi;
  auto kernel = epilogue_needs_rowsum(pb.epi) ? int8_gemv_kernel<T, true> : int8_gemv_kernel<T, false>;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(ceil_div(pb.epi.N, T::kRows));
  cfg.blockDim = dim3(T::kThreads);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  cfg.attrs = attr;
  cfg.numAttrs = qtorch_ptx::pdl_launch_attribute(attr[0]);
  return cudaLaunchKernelEx(&cfg, kernel, args);
}

template <int RB>
cudaError_t launch_gemv_rows(const GemmProblem& pb, cudaStream_t stream) {
  const int M = pb.epi.M;
  if (M <= 8) return launch_gemv_tile<1, RB>(pb, stream);
  if (M <= 16) return launch_gemv_tile<2, RB>(pb, stream);
  if (M <= kGemvMaxM) return launch_gemv_tile<4, RB>(pb, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_gemv(const GemmProblem& pb, Kernel kernel, cudaStream_t stream) {
  if (kernel == Kernel::kGemv16) return launch_gemv_rows<1>(pb, stream);
  if (kernel == Kernel::kGemv32) return launch_gemv_rows<2>(pb, stream);
  return cudaErrorInvalidValue;
}

}  // namespace qtorch_int8
