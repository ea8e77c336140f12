// 16-byte read-only global loads shared by the int8 GEMM and the mixed-input GEMM (torch-free, sm_80+). Volatile, so
// the compiler keeps a batch of them ahead of the mmas that use them (both kernels rely on many loads in flight).
#pragma once
#include <cstdint>

namespace qtorch_ptx {

// Read once (weights): no L1 allocation.
__device__ __forceinline__ uint4 ld_stream_16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Read by many CTAs (activations): cached.
__device__ __forceinline__ uint4 ld_readonly_16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

}  // namespace qtorch_ptx
