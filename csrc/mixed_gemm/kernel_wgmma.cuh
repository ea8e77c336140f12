// Mixed-input GEMM for larger M on sm_90a (torch-free): y = x · Ŵᵀ + bias with warpgroup MMAs whose A operand is the
// int4 weight dequantized in registers and whose B operand is an x tile in shared memory.
//
// CTA: WG warpgroups; warp w owns 16-row weight tile 4·WG·blockIdx.x + w and, each chunk, dequantizes its lane's 16
// tiled-layout bytes into the mma.m16n8k16 A fragments of the chunk's 4 k-steps (convert.cuh: the same fields and
// constants as the register kernel). The CTA's 64 tokens (blockIdx.y) share one x tile per chunk (64 K values = one
// 128-byte row per token, 128-byte-swizzled, K-major) that every warpgroup's wgmma.m64n64k16 reads as B.
//
// Pipeline: a ring of kStages chunks in shared memory filled by cp.async kStages − 1 chunks ahead. Each thread copies
// its own 16 weight bytes (and, grouped, its two rows' scales and zero-point words) and reads back only what it
// copied; the x tile is copied by all threads, so a barrier follows the wait. The bytes in flight per SM are
// (kStages − 1) chunks of every resident CTA, without registers.
//
// K split: gridDim.z CTAs of one cluster take consecutive ranges of chunks (launch.cu picks the split so that small
// grids fill the GPU); their fp32 partials meet through distributed shared memory, each CTA summing a share of the
// outputs over the ranks in rank order (deterministic).
//
// K permutation: the tiled layout holds, for k-step s of lane t, the weights of natural K = 16 t + 4 s + r
// (r = 0..3) in A slots 2 t + 8 (r / 2) + r % 2. So B's slot 16 s + 2 t + 8 (r / 2) + r % 2 of each token row gets
// x[16 t + 4 s + r]: a 16-byte piece p (natural 8 p … 8 p + 7) of a row lands as four 4-byte words at bytes
// 64 (p % 2) + 16 j + 4 (p / 2), j = 0..3 (before the swizzle of the 16-byte unit: u ^ (row % 8)).
// GROUPED: each chunk's products go to a fresh fp32 part (scale_d = 0 at its first k-step), scaled by S and added,
// as in the register kernel (ŵ is never rounded).
#pragma once
#include "common/cluster.cuh"
#include "common/cp_async.cuh"
#include "common/mbarrier.cuh"
#include "common/pdl.cuh"
#include "common/wgmma.cuh"
#include "mixed_gemm/convert.cuh"
#include "mixed_gemm/kernel.cuh"
#include "mixed_gemm/mixed_gemm.h"
#include "mixed_gemm/wgmma_rs.cuh"

namespace qtorch_mixed {

template <class T, bool GROUPED_, int WG_, int STAGES_>
struct WgmmaTile {
  using Act = T;
  static constexpr bool GROUPED = GROUPED_;
  static constexpr int WG = WG_;                     // warpgroups per CTA (64 weight rows each)
  static constexpr int kStages = STAGES_;            // chunks in the shared-memory ring
  static constexpr int kThreads = 128 * WG;
  static constexpr int kRows = 64 * WG;
  static constexpr int kTokens = 64;                 // wgmma N
  static constexpr int CK = 64;                      // int4 chunk: one 128-byte bf16/fp16 row of x per token
  static constexpr int kXBytes = kTokens * 128;      // x of one chunk (1024-aligned: the swizzle atom)
  static constexpr int kWBytes = kThreads * 16;      // each thread's 16 tiled-layout bytes
  static constexpr int kQBytes = GROUPED ? kThreads * 16 : 0;  // each thread's 2 scales + 2 zero-point words
  static constexpr int kStageBytes = kXBytes + kWBytes + kQBytes;  // a multiple of 1024
  static constexpr int kPieces = kTokens * 8 / kThreads;  // 16-byte x pieces per thread per chunk
  static constexpr int kRedBytes = 32 * kThreads * 4;     // split-K partials: 32 accumulators per thread
  static constexpr int kRingBytes = kStages * kStageBytes;
  static constexpr int kSmemBytes = (kRingBytes > kRedBytes ? kRingBytes : kRedBytes) + 1024;  // + base alignment
  static_assert(kStageBytes % 1024 == 0, "every stage's x tile must stay 1024-byte aligned");
};

template <class TL>
__global__ void __launch_bounds__(TL::kThreads, 1) mixed_gemm_wgmma_kernel(const MixedGemmParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename TL::Act;
  using Off = Offset<T, 4>;
  using namespace qtorch_ptx;
  constexpr int S = TL::kStages, P = TL::kPieces;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const uint32_t smem_base = (smem_u32(smem_raw) + 1023u) & ~1023u;  // swizzle atoms: 1024-aligned
  unsigned char* smem = smem_raw + (smem_base - smem_u32(smem_raw));

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int chunks = p.K / TL::CK, groups = p.K / p.group_size, tiles = (p.N + 15) / 16;
  const int tile = blockIdx.x * (TL::kRows / 16) + warp;
  const bool tvalid = tile < tiles;
  const int32_t* wptr = p.w + static_cast<size_t>(min(tile, tiles - 1)) * chunks * 128 + lane * 4;
  int srow[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) srow[h] = min(16 * tile + g + 8 * h, p.N - 1);
  const int m0 = blockIdx.y * TL::kTokens;
  const T* x = static_cast<const T*>(p.x);
  const int per_split = (chunks + gridDim.z - 1) / gridDim.z;  // this CTA's chunks: [c_begin, c_end)
  const int c_begin = min(chunks, static_cast<int>(blockIdx.z) * per_split);
  const int c_end = min(chunks, c_begin + per_split);

  // Chunk-independent parts of this thread's copies. x pieces j = 0..P-1: token xrow + j · kThreads / 8, 16-byte
  // piece tid % 8 (kThreads / 8 is a multiple of 8, so every piece has the same swizzle row % 8).
  const int xrow = tid / 8, piece = tid % 8;
  const T* xsrc[P];
  uint32_t xbytes[P];
#pragma unroll
  for (int j = 0; j < P; ++j) {
    const int m = m0 + xrow + j * (TL::kThreads / 8);
    xsrc[j] = x + static_cast<int64_t>(min(m, p.M - 1)) * p.x_stride + 8 * piece;
    xbytes[j] = m < p.M ? 4u : 0u;
  }
  const uint32_t xdst = xrow * 128 + 4 * (piece / 2);
  uint32_t xunit[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) xunit[k] = ((4 * (piece % 2) + k) ^ (xrow % 8)) << 4;
  // Grouped: this thread's rows' scales and zero points, group by group (chunks_per_group chunks each). Zero points
  // are int8: the aligned word holding Z[row, grp] is copied (the binding keeps w_zp 4-byte aligned).
  const float* sptr[2];
  const int8_t* zptr[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    sptr[h] = p.scale + static_cast<size_t>(srow[h]) * groups;
    zptr[h] = p.zp + static_cast<size_t>(srow[h]) * groups;
  }
  const int chunks_per_group = TL::GROUPED ? p.group_size / TL::CK : 1;

  // The copy stream: chunk cc into ring offset copy_off (both advance by one chunk per call).
  int cc = c_begin, copy_grp = c_begin / chunks_per_group, copy_in_grp = c_begin % chunks_per_group;
  uint32_t copy_off = 0;
  auto copy_weights = [&]() {  // this thread's weight bytes and (grouped) scales / zero-point words of chunk cc
    const uint32_t st = smem_base + copy_off + TL::kXBytes;
    cp_async_16(st + tid * 16, wptr + static_cast<size_t>(cc) * 128, tvalid ? 16u : 0u);
    if constexpr (TL::GROUPED) {
      const uint32_t q = st + TL::kWBytes + tid * 16;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        cp_async_4(q + 4 * h, sptr[h] + copy_grp, 4u);
        const uintptr_t z = reinterpret_cast<uintptr_t>(zptr[h] + copy_grp);
        cp_async_4(q + 8 + 4 * h, reinterpret_cast<const void*>(z & ~uintptr_t{3}), 4u);
      }
    }
  };
  auto copy_x = [&]() {  // chunk cc of the CTA's tokens, each 16-byte piece as four permuted words
    const uint32_t st = smem_base + copy_off + xdst;
#pragma unroll
    for (int j = 0; j < P; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k)
        cp_async_4(st + j * (TL::kThreads / 8) * 128 + xunit[k], xsrc[j] + cc * TL::CK + 2 * k, xbytes[j]);
  };
  auto next_copy = [&]() {
    ++cc;
    copy_off = copy_off + TL::kStageBytes == TL::kRingBytes ? 0 : copy_off + TL::kStageBytes;
    if (++copy_in_grp == chunks_per_group) copy_in_grp = 0, ++copy_grp;
  };

  float acc[32] = {};
  float part[32];
  typename Off::type off[2];
  if constexpr (!TL::GROUPED) {
#pragma unroll
    for (int h = 0; h < 2; ++h) off[h] = Off::make(p.zp[srow[h]]);
  }
  // Weights first: they do not depend on the previous kernel (one commit group holds them and chunk c_begin's x).
  {
    const int saved_cc = cc, saved_grp = copy_grp, saved_in_grp = copy_in_grp;
#pragma unroll 1
    for (int s = 0; s < S - 1 && cc < c_end; ++s) {
      copy_weights();
      next_copy();
    }
    cc = saved_cc, copy_grp = saved_grp, copy_in_grp = saved_in_grp, copy_off = 0;
  }
  pdl_launch_dependents();
  pdl_wait();
#pragma unroll 1
  for (int s = 0; s < S - 1; ++s) {
    if (cc < c_end) {
      copy_x();
      next_copy();
    }
    cp_async_commit();
  }

  // The read side: chunk c in ring offset read_off, its group read_grp.
  uint32_t read_off = 0;
  int read_grp = c_begin / chunks_per_group, read_in_grp = c_begin % chunks_per_group;
#pragma unroll 1
  for (int c = c_begin; c < c_end; ++c) {
    cp_async_wait<S - 2>();   // this thread's copies of chunk c have landed
    fence_proxy_async_smem();  // ... and are visible to the wgmmas (async proxy)
    __syncthreads();           // every thread's x pieces of chunk c; every wgmma of chunk c − 1 has completed
    if (cc < c_end) {          // refill the stage chunk c − 1 used with chunk c + S − 1
      copy_weights();
      copy_x();
      next_copy();
    }
    cp_async_commit();
    const unsigned char* st = smem + read_off + TL::kXBytes;
    const uint4 wv = *reinterpret_cast<const uint4*>(st + tid * 16);
    float sc[2];
    if constexpr (TL::GROUPED) {
      const uint32_t* q = reinterpret_cast<const uint32_t*>(st + TL::kWBytes + tid * 16);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        sc[h] = __uint_as_float(q[h]);
        const int shift = 8 * static_cast<int>(reinterpret_cast<uintptr_t>(zptr[h] + read_grp) & 3);
        off[h] = Off::make(static_cast<int8_t>(q[2 + h] >> shift));
      }
      if (++read_in_grp == chunks_per_group) read_in_grp = 0, ++read_grp;
    }
    uint32_t a[4][4];
#pragma unroll
    for (int s = 0; s < 4; ++s) fragment<T, 4>(wv, s, off, a[s]);
    const uint64_t desc = smem_desc_sw128(smem_base + read_off);
    read_off = read_off + TL::kStageBytes == TL::kRingBytes ? 0 : read_off + TL::kStageBytes;
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      if constexpr (TL::GROUPED)
        WgmmaRS<T, 64>::mma(part, a[s], desc + 2 * s, s > 0);
      else
        WgmmaRS<T, 64>::mma(acc, a[s], desc + 2 * s, 1);
    }
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int s = 0; s < 4; ++s) fence_regs(a[s]);  // A registers stay untouched until here
    if constexpr (TL::GROUPED) {
      fence_regs(part);
#pragma unroll
      for (int i = 0; i < 32; ++i) acc[i] = fmaf(sc[(i % 4) / 2], part[i], acc[i]);
    } else {
      fence_regs(acc);
    }
  }
  cp_async_wait<0>();  // only empty groups remain; the ring may be reused

  // acc[4 j + i]: row 16 tile + g + 8 (i / 2), token m0 + 8 j + 2 t + i % 2.
  auto store = [&](int i, float v) {
    const int n = 16 * tile + g + 8 * ((i % 4) / 2), m = m0 + 8 * (i / 4) + 2 * t + i % 2;
    if (tvalid && n < p.N && m < p.M) store_output<TL>(p, m, n, v);
  };
  const int splits = gridDim.z;
  if (splits == 1) {
#pragma unroll
    for (int i = 0; i < 32; ++i) store(i, acc[i]);
    return;
  }
  __syncthreads();  // every warpgroup is past its last wgmma: the ring holds the partials now
  float* red = reinterpret_cast<float*>(smem);  // red[i · kThreads + tid] = this CTA's acc[i] of thread tid
#pragma unroll
  for (int i = 0; i < 32; ++i) red[i * TL::kThreads + tid] = acc[i];
  cluster_sync();  // the partials of every CTA of the cluster are written
  const uint32_t rank = cluster_ctarank();
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    if (i % splits != static_cast<int>(rank)) continue;
    float sum = 0.0f;
    for (int r = 0; r < splits; ++r)
      sum += ld_cluster_f32(map_cluster_rank(smem_base + 4u * static_cast<uint32_t>(i * TL::kThreads + tid), r));
    store(i, sum);
  }
  cluster_sync();  // no CTA leaves while others may still read its shared memory
#endif
}

}  // namespace qtorch_mixed
