// TMA tensor maps for int8 row-major matrices (host, torch-free). The driver entry point cuTensorMapEncodeTiled is
// fetched once through the runtime (cudaGetDriverEntryPointByVersion), so nothing links against libcuda.
#pragma once
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace qtorch_int8 {

// Map of a (rows, cols) int8 row-major matrix (row stride = cols bytes, 16-byte aligned base, cols % 16 == 0),
// loaded in boxes of box_rows x 128 bytes with 128-byte swizzle; out-of-range elements read as zero.
cudaError_t make_tensor_map_s8(CUtensorMap* map, const int8_t* base, uint64_t rows, uint64_t cols, uint32_t box_rows);

}  // namespace qtorch_int8
