// Warpgroup MMA helpers shared by the int8 GEMM and the mixed-input GEMM (torch-free, sm_90a only: compiled where
// __CUDA_ARCH_FEAT_SM90_ALL is defined, so the sm_80 pass never sees them).
#pragma once
#include <cstdint>

namespace qtorch_ptx {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// Orders this thread's generic-proxy shared-memory writes before later async-proxy (wgmma / TMA) accesses.
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes across wgmma fences/waits. (Register A operands need no
// fence: ptxas tracks a wgmma's pending register reads until its wait.)
template <int R>
__device__ __forceinline__ void fence_regs(int32_t (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[i])::"memory");
}
template <int R>
__device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// wgmma shared-memory matrix descriptor for a K-major tile with 128-byte swizzle: rows of 128 bytes, 8-row core
// groups 1024 bytes apart (stride byte offset), tile base 1024-byte aligned. Adding 2 to the descriptor moves its
// start 32 bytes along K (the next k-step inside the 128-byte row).
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t smem_addr) {
  uint64_t desc = static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4);  // start address >> 4, bits 0-13
  desc |= static_cast<uint64_t>(16 >> 4) << 16;                        // leading byte offset (unused for SW128 K-major)
  desc |= static_cast<uint64_t>(1024 >> 4) << 32;                      // stride byte offset: 8 rows x 128 B
  desc |= static_cast<uint64_t>(1) << 62;                              // layout: 128-byte swizzle
  return desc;
}

// Warp specialization: a warpgroup gives registers back (producers) or takes them (consumers).
template <uint32_t kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <uint32_t kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Named barrier over `threads` threads (multiple of 32), id 1..15 (0 is __syncthreads).
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace qtorch_ptx
