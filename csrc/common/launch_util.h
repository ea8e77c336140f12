// Small host helpers shared by the launchers of both GEMMs (torch-free).
#pragma once
#include <cuda_runtime_api.h>

namespace qtorch_ptx {

// Raises the dynamic shared-memory limit of `kernel` to `bytes` on the current device, once per (kernel, device):
// the attribute is per device, so a process with several GPUs raises it on each.
cudaError_t ensure_max_dynamic_smem(const void* kernel, int bytes);

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace qtorch_ptx
