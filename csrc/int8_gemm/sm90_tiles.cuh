// The Hopper tile configurations and their launcher template (torch-free). Each configuration is instantiated in
// its own translation unit (launch_sm90_<tile>.cu) so that the build compiles them in parallel.
#pragma once
#include "int8_gemm/int8_gemm.h"
#include "int8_gemm/kernel_sm90.cuh"
#include "int8_gemm/launch_util.h"
#include "common/tensor_map.h"

namespace qtorch_int8 {

//                                  WN   CM  CN  MW  Stages  Pingpong
using Sm90Tile128x256 = Sm90Tile<256, 2, 1, 1, 4, false>;   // cooperative, 192 KB ring
using Sm90Tile128x128 = Sm90Tile<128, 2, 1, 1, 6, false>;   // cooperative, 192 KB ring
using Sm90Tile64x256 = Sm90Tile<128, 1, 2, 1, 5, false>;    // cooperative, 200 KB ring
using Sm90Tile64x128 = Sm90Tile<64, 1, 2, 1, 8, false>;     // cooperative, 192 KB ring (mid M: twice the N tiles)
using Sm90TilePP128x128 = Sm90Tile<128, 1, 1, 2, 6, true>;  // ping-pong, 128x128 per consumer, 192 KB ring
using Sm90TilePP64x256 = Sm90Tile<256, 1, 1, 1, 5, true>;   // ping-pong, 64x256 per consumer, 200 KB ring

using Sm90KernelFn = void (*)(const CUtensorMap, const CUtensorMap, const Sm90Args);

// The instantiation for an output kind and the presence of Z_W (the row-sum path); raw int32 output never sums rows.
template <class T>
Sm90KernelFn select_sm90_kernel(int out_kind, bool rowsum) {
  switch (out_kind) {
    case kOutBF16: return rowsum ? int8_gemm_sm90_kernel<T, kOutBF16, true> : int8_gemm_sm90_kernel<T, kOutBF16, false>;
    case kOutFP16: return rowsum ? int8_gemm_sm90_kernel<T, kOutFP16, true> : int8_gemm_sm90_kernel<T, kOutFP16, false>;
    case kOutFP32: return rowsum ? int8_gemm_sm90_kernel<T, kOutFP32, true> : int8_gemm_sm90_kernel<T, kOutFP32, false>;
    case kOutInt8Requant:
      return rowsum ? int8_gemm_sm90_kernel<T, kOutInt8Requant, true>
                    : int8_gemm_sm90_kernel<T, kOutInt8Requant, false>;
    case kOutInt32Raw: return int8_gemm_sm90_kernel<T, kOutInt32Raw, false>;
    default: return nullptr;
  }
}

template <class T>
cudaError_t launch_sm90_tile(const GemmProblem& pb, int split_k, int num_sms, cudaStream_t stream) {
  const EpilogueParams& e = pb.epi;
  Sm90Args args;
  args.M = e.M;
  args.N = e.N;
  args.K = e.K;
  args.tiles_m = ceil_div(e.M, T::kBM);
  args.tiles_n = ceil_div(e.N, T::kBN);
  args.k_blocks = ceil_div(e.K, T::kBK);
  args.split_k = split_k;
  args.epi = e;
  if (split_k < 1 || split_k > 8 || split_k > args.k_blocks || num_sms < 1) return cudaErrorInvalidValue;
  if (T::kPingpong && split_k != 1) return cudaErrorInvalidValue;  // ping-pong runs persistent only

  CUtensorMap tmap_x, tmap_w;
  // int8 (rows, K) row-major, boxes of 128 bytes of K x the tile's rows, 128-byte swizzle
  cudaError_t err = qtorch_ptx::make_tensor_map_2d(&tmap_x, CU_TENSOR_MAP_DATA_TYPE_UINT8, pb.x, e.M, e.K, e.K, 128,
                                                   T::kBM, CU_TENSOR_MAP_SWIZZLE_128B);
  if (err != cudaSuccess) return err;
  err = qtorch_ptx::make_tensor_map_2d(&tmap_w, CU_TENSOR_MAP_DATA_TYPE_UINT8, pb.w, e.N, e.K, e.K, 128, T::kBN,
                                       CU_TENSOR_MAP_SWIZZLE_128B);
  if (err != cudaSuccess) return err;

  const Sm90KernelFn kernel = select_sm90_kernel<T>(e.out_kind, epilogue_needs_rowsum(e));
  if (kernel == nullptr) return cudaErrorInvalidValue;
  err = ensure_max_dynamic_smem(reinterpret_cast<const void*>(kernel), T::kSmemBytes);
  if (err != cudaSuccess) return err;

  const int tiles = args.tiles_m * args.tiles_n;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(split_k == 1 ? (tiles < num_sms ? tiles : num_sms) : tiles * split_k);
  cfg.blockDim = dim3(T::kThreads);
  cfg.dynamicSmemBytes = T::kSmemBytes;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  if (split_k > 1) {
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = split_k;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&cfg, kernel, tmap_x, tmap_w, args);
}

extern template cudaError_t launch_sm90_tile<Sm90Tile128x256>(const GemmProblem&, int, int, cudaStream_t);
extern template cudaError_t launch_sm90_tile<Sm90Tile128x128>(const GemmProblem&, int, int, cudaStream_t);
extern template cudaError_t launch_sm90_tile<Sm90Tile64x256>(const GemmProblem&, int, int, cudaStream_t);
extern template cudaError_t launch_sm90_tile<Sm90Tile64x128>(const GemmProblem&, int, int, cudaStream_t);
extern template cudaError_t launch_sm90_tile<Sm90TilePP128x128>(const GemmProblem&, int, int, cudaStream_t);
extern template cudaError_t launch_sm90_tile<Sm90TilePP64x256>(const GemmProblem&, int, int, cudaStream_t);

}  // namespace qtorch_int8
