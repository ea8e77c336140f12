// Small host helpers shared by the launchers (torch-free).
#pragma once
#include <cuda_runtime_api.h>

namespace qtorch_int8 {

// Raises the dynamic shared-memory limit of `kernel` to `bytes` on the current device, once per (kernel, device).
cudaError_t ensure_max_dynamic_smem(const void* kernel, int bytes);

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace qtorch_int8
