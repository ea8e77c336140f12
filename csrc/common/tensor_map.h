// TMA tensor maps of 2-D row-major matrices (host, torch-free), shared by the int8 GEMM and the mixed-input GEMM. The
// driver entry point cuTensorMapEncodeTiled is fetched once through the runtime (cudaGetDriverEntryPointByVersion),
// so nothing links against libcuda.
#pragma once
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace qtorch_ptx {

// Map of a (rows, cols) matrix of `type` elements, rows `row_bytes` apart (a multiple of 16, base 16-byte aligned),
// loaded in boxes of box_rows x box_cols elements; out-of-range elements read as zero. With a swizzle the box's row
// (box_cols x element size) must not exceed the swizzle span.
cudaError_t make_tensor_map_2d(CUtensorMap* map, CUtensorMapDataType type, const void* base, uint64_t rows,
                               uint64_t cols, uint64_t row_bytes, uint32_t box_cols, uint32_t box_rows,
                               CUtensorMapSwizzle swizzle);

}  // namespace qtorch_ptx
