// Asynchronous global -> shared copies (cp.async, sm_80+), shared by the int8 GEMM and the mixed-input GEMM
// (torch-free). A thread's copies complete in commit-group order; cp_async_wait<N> returns when at most N of its
// groups are pending (only this thread's copies: other threads' need a barrier after their own wait).
#pragma once
#include <cstdint>

namespace qtorch_ptx {

// 16-byte copy, L2 only; src_bytes = 0 writes zeros (out-of-range rows / K tail) without reading src.
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(src), "r"(src_bytes)
               : "memory");
}
// 4-byte copy (src 4-byte aligned); src_bytes = 0 writes zeros.
__device__ __forceinline__ void cp_async_4(uint32_t smem_addr, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// The mbarrier counts one arrival when every cp.async this thread issued before has completed (its expected count
// includes this arrival: .noinc).
__device__ __forceinline__ void cp_async_mbar_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                   static_cast<uint32_t>(__cvta_generic_to_shared(bar)))
               : "memory");
}

}  // namespace qtorch_ptx
