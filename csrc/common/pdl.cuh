// Programmatic dependent launch (sm_90+, torch-free): a kernel launched with it may start while the previous kernel
// in the stream finishes, and must call pdl_wait() before it reads what that kernel wrote (or writes anything).
// Weights do not depend on the previous layer, so a GEMM issues its first weight loads before pdl_wait() and the
// HBM stream continues across kernel boundaries. On sm_80 both calls compile to nothing and the launch attribute
// is left off (pdl_launch_attribute), so the kernels behave exactly as plain launches there.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdlib>

namespace qtorch_ptx {

// Block until the grids this one depends on have completed and their memory is visible (no-op without PDL).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Let the next kernel in the stream (when launched with PDL) begin launching its CTAs.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
#endif
}

// Compute capability major of the current device (cached per device ordinal; 0 when it cannot be read).
inline int current_cc_major() {
  static int cached[64] = {};  // 0: not read yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 0;
  if (cached[device] == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return 0;
    cached[device] = major;
  }
  return cached[device];
}

// Fills `attr` with the PDL attribute and returns 1 on devices of compute capability 9.0+ (0 elsewhere, or when
// QTORCH_PDL=0: A/B measurements only).
inline unsigned pdl_launch_attribute(cudaLaunchAttribute& attr) {
  static const bool disabled = [] {
    const char* v = std::getenv("QTORCH_PDL");
    return v != nullptr && v[0] == '0';
  }();
  if (disabled || current_cc_major() < 9) return 0;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  return 1;
}

}  // namespace qtorch_ptx
