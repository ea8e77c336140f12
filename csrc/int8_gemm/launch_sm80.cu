// Launcher of the portable mma.sync kernel (sm_80 / sm_86 / sm_89; also runs on sm_90).
#include "int8_gemm/int8_gemm.h"
#include "int8_gemm/kernel_sm80.cuh"
#include "int8_gemm/launch_util.h"

namespace qtorch_int8 {

namespace {

using Sm80KernelFn = void (*)(const Sm80Args);

// Same instantiation rule as the Hopper kernels (sm90_tiles.cuh).
Sm80KernelFn select_sm80_kernel(int out_kind, bool rowsum) {
  switch (out_kind) {
    case kOutBF16: return rowsum ? int8_gemm_sm80_kernel<kOutBF16, true> : int8_gemm_sm80_kernel<kOutBF16, false>;
    case kOutFP16: return rowsum ? int8_gemm_sm80_kernel<kOutFP16, true> : int8_gemm_sm80_kernel<kOutFP16, false>;
    case kOutFP32: return rowsum ? int8_gemm_sm80_kernel<kOutFP32, true> : int8_gemm_sm80_kernel<kOutFP32, false>;
    case kOutInt8Requant:
      return rowsum ? int8_gemm_sm80_kernel<kOutInt8Requant, true> : int8_gemm_sm80_kernel<kOutInt8Requant, false>;
    case kOutInt32Raw: return int8_gemm_sm80_kernel<kOutInt32Raw, false>;
    default: return nullptr;
  }
}

}  // namespace

cudaError_t launch_sm80(const GemmProblem& pb, cudaStream_t stream) {
  using T = Sm80Tile;
  Sm80Args args;
  args.x = pb.x;
  args.w = pb.w;
  args.tiles_m = ceil_div(pb.epi.M, T::kBM);
  args.tiles_n = ceil_div(pb.epi.N, T::kBN);
  args.epi = pb.epi;
  const Sm80KernelFn kernel = select_sm80_kernel(pb.epi.out_kind, epilogue_needs_rowsum(pb.epi));
  if (kernel == nullptr) return cudaErrorInvalidValue;
  cudaError_t err = ensure_max_dynamic_smem(reinterpret_cast<const void*>(kernel), T::kSmemBytes);
  if (err != cudaSuccess) return err;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(args.tiles_m * args.tiles_n);
  cfg.blockDim = dim3(T::kThreads);
  cfg.dynamicSmemBytes = T::kSmemBytes;
  cfg.stream = stream;
  return cudaLaunchKernelEx(&cfg, kernel, args);
}

}  // namespace qtorch_int8
