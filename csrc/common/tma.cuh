// TMA (cp.async.bulk.tensor) loads of 2-D boxes into shared memory, completing on an mbarrier (sm_90a only: compiled
// where __CUDA_ARCH_FEAT_SM90_ALL is defined), shared by the int8 GEMM and the mixed-input GEMM (torch-free).
// Tensor maps: common/tensor_map.h.
#pragma once
#include <cstdint>

#include "common/mbarrier.cuh"

namespace qtorch_ptx {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// Box at (inner coordinate c0, outer coordinate c1) of the tensor map into smem, completing on bar.
__device__ __forceinline__ void tma_load_2d(void* smem_dst, const void* tmap, uint64_t* bar, int32_t c0, int32_t c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n"
      ::"r"(smem_u32(smem_dst)), "l"(tmap), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_desc(const void* tmap) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace qtorch_ptx
