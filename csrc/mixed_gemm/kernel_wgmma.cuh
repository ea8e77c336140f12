// Mixed-input GEMM for larger M on sm_90a (torch-free): y = x · Ŵᵀ + bias with warpgroup MMAs whose A operand is the
// int4 weight dequantized in registers and whose B operand is an x tile in shared memory.
//
// CTA: WG warpgroups; warp w owns 16-row weight tile 4·WG·blockIdx.x + w and, each chunk, dequantizes its lane's 16
// tiled-layout bytes into the mma.m16n8k16 A fragments of the chunk's 4 k-steps (convert.cuh: the same fields and
// constants as the register kernel). The CTA's 64 tokens (blockIdx.y) of x are staged per chunk (64 K values = one
// 128-byte row per token) in a double-buffered, 128-byte-swizzled K-major tile that every warpgroup's
// wgmma.m64n64k16 reads as B. No warp splits K, so there is no cross-warp reduction: each thread stores its
// accumulators.
//
// K permutation: the tiled layout holds, for k-step s of lane t, the weights of natural K = 16 t + 4 s + r
// (r = 0..3) in A slots 2 t + 8 (r / 2) + r % 2. So B's slot 16 s + 2 t + 8 (r / 2) + r % 2 of each token row gets
// x[16 t + 4 s + r]: a 16-byte piece p (natural 8 p … 8 p + 7) of a row lands as four 4-byte words at bytes
// 64 (p % 2) + 16 j + 4 (p / 2), j = 0..3 (before the swizzle of the 16-byte unit: u ^ (row % 8)).
// GROUPED: each chunk's products go to a fresh fp32 part (scale_d = 0 at its first k-step), scaled by S and added,
// as in the register kernel (ŵ is never rounded).
#pragma once
#include "common/mbarrier.cuh"
#include "common/pdl.cuh"
#include "common/wgmma.cuh"
#include "mixed_gemm/convert.cuh"
#include "mixed_gemm/kernel.cuh"
#include "mixed_gemm/mixed_gemm.h"
#include "mixed_gemm/wgmma_rs.cuh"

namespace qtorch_mixed {

template <class T, bool GROUPED_, int WG_, int U_>
struct WgmmaTile {
  using Act = T;
  static constexpr bool GROUPED = GROUPED_;
  static constexpr int WG = WG_;                     // warpgroups per CTA (64 weight rows each)
  static constexpr int U = U_;                       // weight chunks loaded ahead per warp
  static constexpr int kThreads = 128 * WG;
  static constexpr int kRows = 64 * WG;
  static constexpr int kTokens = 64;                 // wgmma N
  static constexpr int CK = 64;                      // int4 chunk: one 128-byte bf16/fp16 row of x per token
  static constexpr int kStageBytes = kTokens * 128;  // one chunk of x for the CTA's tokens
  static constexpr int kPieces = kTokens * 8 / kThreads;  // 16-byte x pieces per thread per chunk
  static constexpr int kSmemBytes = 2 * kStageBytes + 1024;  // double buffer + slack to align the base to 1024
};

template <class TL>
__global__ void __launch_bounds__(TL::kThreads, 1) mixed_gemm_wgmma_kernel(const MixedGemmParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename TL::Act;
  using Off = Offset<T, 4>;
  constexpr int U = TL::U, P = TL::kPieces;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const uint32_t smem_base = (qtorch_ptx::smem_u32(smem_raw) + 1023u) & ~1023u;  // swizzle atoms: 1024-aligned
  unsigned char* smem = smem_raw + (smem_base - qtorch_ptx::smem_u32(smem_raw));

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int chunks = p.K / TL::CK, groups = p.K / p.group_size, tiles = (p.N + 15) / 16;
  const int tile = blockIdx.x * (TL::kRows / 16) + warp;
  const bool tvalid = tile < tiles;
  const int32_t* wptr = p.w + static_cast<size_t>(min(tile, tiles - 1)) * chunks * 128 + lane * 4;
  int srow[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) srow[h] = min(16 * tile + g + 8 * h, p.N - 1);
  const int m0 = blockIdx.y * TL::kTokens;
  const T* x = static_cast<const T*>(p.x);

  // This thread's x pieces: piece i of the chunk is (token i / 8, 16-byte piece i % 8).
  auto load_x = [&](int c, uint4 (&xr)[P]) {
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const int i = threadIdx.x + j * TL::kThreads, m = m0 + i / 8;
      xr[j] = m < p.M ? qtorch_ptx::ld_readonly_16(x + static_cast<int64_t>(m) * p.x_stride + c * TL::CK + 8 * (i % 8))
                      : make_uint4(0, 0, 0, 0);
    }
  };
  auto store_x = [&](int stage, const uint4 (&xr)[P]) {
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const int i = threadIdx.x + j * TL::kThreads, row = i / 8, piece = i % 8;
      unsigned char* base = smem + stage * TL::kStageBytes + row * 128 + 4 * (piece / 2);
      const uint32_t words[4] = {xr[j].x, xr[j].y, xr[j].z, xr[j].w};
#pragma unroll
      for (int k = 0; k < 4; ++k)
        *reinterpret_cast<uint32_t*>(base + (((4 * (piece % 2) + k) ^ (row % 8)) << 4)) = words[k];
    }
  };

  float acc[32] = {};
  float part[32];
  typename Off::type off[2];
  if constexpr (!TL::GROUPED) {
#pragma unroll
    for (int h = 0; h < 2; ++h) off[h] = Off::make(p.zp[srow[h]]);
  }
  uint4 wv[U];
#pragma unroll
  for (int u = 0; u < U; ++u)  // weights first: they do not depend on the previous kernel
    wv[u] = (u < chunks && tvalid) ? ld_stream_16(wptr + static_cast<size_t>(u) * 128) : make_uint4(0, 0, 0, 0);
  qtorch_ptx::pdl_launch_dependents();
  qtorch_ptx::pdl_wait();
  {
    uint4 xr[P];
    load_x(0, xr);
    store_x(0, xr);
  }

#pragma unroll 1
  for (int c0 = 0; c0 < chunks; c0 += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= chunks) break;  // block-uniform
      qtorch_ptx::fence_proxy_async_smem();  // this thread's x stores -> visible to the wgmmas (async proxy)
      __syncthreads();  // stage c % 2 complete; the wgmmas of chunk c - 1 (stage (c + 1) % 2) have completed
      uint4 xr[P];
      if (c + 1 < chunks) load_x(c + 1, xr);
      if constexpr (TL::GROUPED) {
        const int grp = c * TL::CK / p.group_size;
#pragma unroll
        for (int h = 0; h < 2; ++h) off[h] = Off::make(__ldg(p.zp + static_cast<size_t>(srow[h]) * groups + grp));
      }
      uint32_t a[4][4];
#pragma unroll
      for (int s = 0; s < 4; ++s) fragment<T, 4>(wv[u], s, off, a[s]);
      const uint64_t desc = qtorch_ptx::smem_desc_sw128(smem_base + (c % 2) * TL::kStageBytes);
      qtorch_ptx::wgmma_fence();
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        if constexpr (TL::GROUPED)
          WgmmaRS<T, 64>::mma(part, a[s], desc + 2 * s, s > 0);
        else
          WgmmaRS<T, 64>::mma(acc, a[s], desc + 2 * s, 1);
      }
      qtorch_ptx::wgmma_commit();
      if (c + 1 < chunks) store_x((c + 1) % 2, xr);  // the other stage: no wgmma of this chunk reads it
      if (c + U < chunks && tvalid) wv[u] = ld_stream_16(wptr + static_cast<size_t>(c + U) * 128);
      float sc[2];
      if constexpr (TL::GROUPED) {
        const int grp = c * TL::CK / p.group_size;
#pragma unroll
        for (int h = 0; h < 2; ++h) sc[h] = __ldg(p.scale + static_cast<size_t>(srow[h]) * groups + grp);
      }
      qtorch_ptx::wgmma_wait<0>();
#pragma unroll
      for (int s = 0; s < 4; ++s) qtorch_ptx::fence_regs(a[s]);  // A registers stay untouched until here
      if constexpr (TL::GROUPED) {
        qtorch_ptx::fence_regs(part);
#pragma unroll
        for (int i = 0; i < 32; ++i) acc[i] = fmaf(sc[(i % 4) / 2], part[i], acc[i]);
      } else {
        qtorch_ptx::fence_regs(acc);
      }
    }
  }

  // acc[4 j + i]: row 16 tile + g + 8 (i / 2), token m0 + 8 j + 2 t + i % 2.
  if (!tvalid) return;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int n = 16 * tile + g + 8 * ((i % 4) / 2), m = m0 + 8 * (i / 4) + 2 * t + i % 2;
    if (n < p.N && m < p.M) store_output<TL>(p, m, n, acc[i]);
  }
#endif
}

}  // namespace qtorch_mixed
