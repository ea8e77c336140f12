// x -> x_perm for the warpgroup kernel (torch-free): each 64-value chunk of a row of x rearranged into the order of
// the tiled layout's A slots, so that a token's chunk is one 128-byte row the kernel's TMA can stage as the wgmma B
// operand. In 4-byte words (pairs of values) of a chunk: x_perm word 8 s + 4 h + t = x word 8 t + 2 s + h
// (s, t = 0..3, h = 0..1; kernel_wgmma.cuh derives it from the layout's K = 16 t + 4 s + r).
#pragma once
#include <cstdint>

#include "common/global_loads.cuh"
#include "common/pdl.cuh"
#include "mixed_gemm/mixed_gemm.h"

namespace qtorch_mixed {

// One thread per (row, chunk): 128 bytes in, 128 bytes out, as 16-byte vectors.
__global__ void __launch_bounds__(256) permute_x_kernel(const MixedGemmParams p) {
  const int chunks = p.K / 64;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  qtorch_ptx::pdl_launch_dependents();
  qtorch_ptx::pdl_wait();  // x is the previous kernel's output; x_perm may reuse memory it still read
  if (item >= static_cast<int64_t>(p.M) * chunks) return;
  const int m = static_cast<int>(item / chunks), c = static_cast<int>(item % chunks);
  const unsigned char* src = static_cast<const unsigned char*>(p.x) + (static_cast<int64_t>(m) * p.x_stride + c * 64) * 2;
  uint32_t in[32], out[32];
#pragma unroll
  for (int v = 0; v < 8; ++v) {
    const uint4 q = qtorch_ptx::ld_readonly_16(src + 16 * v);
    in[4 * v] = q.x, in[4 * v + 1] = q.y, in[4 * v + 2] = q.z, in[4 * v + 3] = q.w;
  }
#pragma unroll
  for (int s = 0; s < 4; ++s)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int t = 0; t < 4; ++t) out[8 * s + 4 * h + t] = in[8 * t + 2 * s + h];
  uint4* dst = reinterpret_cast<uint4*>(static_cast<unsigned char*>(p.x_perm) + (static_cast<int64_t>(m) * p.K + c * 64) * 2);
#pragma unroll
  for (int v = 0; v < 8; ++v) dst[v] = make_uint4(out[4 * v], out[4 * v + 1], out[4 * v + 2], out[4 * v + 3]);
}

}  // namespace qtorch_mixed
