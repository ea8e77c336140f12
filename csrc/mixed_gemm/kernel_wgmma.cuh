// Mixed-input GEMM for larger M on sm_90a (torch-free): y = x · Ŵᵀ + bias with warpgroup MMAs whose A operand is the
// int4 weight dequantized in registers and whose B operand is an x tile in shared memory.
//
// Warp-specialized (the int8 GEMM's scheme, csrc/int8_gemm/kernel_sm90.cuh): warpgroup 0 is the producer, WG consumer
// warpgroups own 64 weight rows each (warp w of consumer c: 16-row tile 4·WG·blockIdx.x + 4c + w). Per 64-value K
// chunk, one producer thread loads by TMA into a kStages-deep ring: the CTA's kTokens rows of x_perm (128 bytes each,
// 128-byte swizzle) and its 4·WG weight tiles' 512-byte pieces (the tiled layout: a tile's chunks are contiguous);
// grouped, the producer warp's lanes copy each row's scale and zero-point word with cp.async, counted by the same
// "full" mbarrier. Consumers wait on it, read their lane's 16 weight bytes, dequantize them into the mma.m16n8k16
// A fragments of the chunk's 4 k-steps (convert.cuh), run wgmma.m64n{kTokens}k16 against the x tile and release the
// stage through the "empty" mbarrier.
//
// x_perm: x with the tiled layout's K permutation applied per chunk (permute_x.cuh), so a token's chunk is one
// 128-byte row in the order of the A slots and TMA can stage it.
//
// K split: gridDim.z CTAs of one cluster take consecutive ranges of chunks (launch.cu picks the split so that small
// grids fill the GPU); their fp32 partials meet through distributed shared memory (16-byte loads), each CTA summing a
// share of the accumulator quads over the ranks in rank order (deterministic).
// GROUPED: each chunk's products go to a fresh fp32 part (scale_d = 0 at its first k-step), scaled by S and added,
// as in the register kernel (ŵ is never rounded).
#pragma once
#include <cuda.h>

#include <type_traits>

#include "common/cluster.cuh"
#include "common/cp_async.cuh"
#include "common/mbarrier.cuh"
#include "common/pdl.cuh"
#include "common/tma.cuh"
#include "common/wgmma.cuh"
#include "mixed_gemm/convert.cuh"
#include "mixed_gemm/kernel.cuh"
#include "mixed_gemm/mixed_gemm.h"
#include "mixed_gemm/wgmma_rs.cuh"

namespace qtorch_mixed {

template <class T, bool GROUPED_, int WG_, int TOKENS_, int STAGES_, bool OVERLAP_ = false>
struct WgmmaTile {
  using Act = T;
  static constexpr bool GROUPED = GROUPED_;
  static constexpr int WG = WG_;                  // consumer warpgroups (64 weight rows each)
  static constexpr int kTokens = TOKENS_;         // wgmma N: tokens per CTA (64 or 128)
  static constexpr int kStages = STAGES_;         // chunks in the shared-memory ring
  static constexpr int kBuffers = OVERLAP_ ? 2 : 1;  // chunks in flight per consumer: 2 overlaps one chunk's
                                                      // dequantization with the previous chunk's wgmmas
  static constexpr int kThreads = 128 * (WG + 1);
  static constexpr int kRows = 64 * WG;
  static constexpr int CK = 64;                   // int4 chunk: one 128-byte bf16/fp16 row of x per token
  static constexpr int kXBytes = kTokens * 128;   // x_perm box (1024-aligned: the swizzle atom)
  static constexpr int kWBytes = 4 * WG * 512;    // 4·WG tiles x 512 bytes
  static constexpr int kQBytes = GROUPED ? kRows * 8 : 0;  // per row: scale, zero-point word
  static constexpr int kStageBytes = (kXBytes + kWBytes + kQBytes + 1023) / 1024 * 1024;
  static constexpr int kAccRegs = kTokens / 2;    // fp32 accumulators per consumer thread
  static constexpr int kRedBytes = kAccRegs * 4 * 128 * WG;  // split-K partials (reuse the ring)
  static constexpr int kBarOffset = kStages * kStageBytes;
  static constexpr int kSmemBytes = kBarOffset + 2 * kStages * 8 + 1024;  // + slack to align the base to 1024
  static_assert(kRedBytes <= kBarOffset, "the split-K exchange must fit in the ring");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90 is 227 KB");
  static_assert(WG <= 2, "the 232-register consumer budget allows two consumer warpgroups");
};

template <class TL>
__global__ void __launch_bounds__(TL::kThreads, 1)
    mixed_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap tmap_x,  // x_perm (M, K) as bytes, box 128 x kTokens
                            const __grid_constant__ CUtensorMap tmap_w,  // tiled w (tiles, K/64·128) int32, box 128 x 4WG
                            const MixedGemmParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename TL::Act;
  using Off = Offset<T, 4>;
  using namespace qtorch_ptx;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const uint32_t smem_base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  unsigned char* smem = smem_raw + (smem_base - smem_u32(smem_raw));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + TL::kBarOffset);
  uint64_t* empty = full + TL::kStages;

  const int warpgroup = threadIdx.x / 128, chunks = p.K / TL::CK, groups = p.K / p.group_size;
  const int tiles = (p.N + 15) / 16, tile0 = blockIdx.x * (TL::kRows / 16), m0 = blockIdx.y * TL::kTokens;
  const int per_split = (chunks + gridDim.z - 1) / gridDim.z;  // this CTA's chunks: [c_begin, c_end)
  const int c_begin = min(chunks, static_cast<int>(blockIdx.z) * per_split);
  const int c_end = min(chunks, c_begin + per_split);
  const int chunks_per_group = TL::GROUPED ? p.group_size / TL::CK : 1;

  if (threadIdx.x == 0) {
    for (int s = 0; s < TL::kStages; ++s) {
      mbar_init(&full[s], 1 + (TL::GROUPED ? 32 : 0));  // the TMA thread's expect_tx (+ the copying lanes)
      mbar_init(&empty[s], 4 * TL::WG);                  // one arrival per consumer warp
    }
    fence_mbar_init();
    tma_prefetch_desc(&tmap_x);
    tma_prefetch_desc(&tmap_w);
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ------------------------------------------------------------------ producer
    setmaxnreg_dec<40>();
    const int lane = threadIdx.x % 32;
    pdl_launch_dependents();
    if (threadIdx.x < 32) {
      int grp = c_begin / chunks_per_group, in_grp = c_begin % chunks_per_group;
      // Chunk c's weights (lane 0, TMA) and grouped scale / zero-point words (every lane, cp.async) into stage st.
      auto load_weights = [&](unsigned char* st, int c, uint64_t* bar) {
        if (lane == 0) {
          mbar_arrive_expect_tx(bar, TL::kXBytes + TL::kWBytes);  // both boxes; OOB parts are zero-filled and counted
          tma_load_2d(st + TL::kXBytes, &tmap_w, bar, c * 128, tile0);
        }
        if constexpr (TL::GROUPED) {
          const uint32_t q = smem_u32(st + TL::kXBytes + TL::kWBytes);
          for (int r = lane; r < TL::kRows; r += 32) {
            const int n = min(16 * tile0 + r, p.N - 1);
            cp_async_4(q + 8 * r, p.scale + static_cast<size_t>(n) * groups + grp, 4u);
            const uintptr_t z = reinterpret_cast<uintptr_t>(p.zp + static_cast<size_t>(n) * groups + grp);
            cp_async_4(q + 8 * r + 4, reinterpret_cast<const void*>(z & ~uintptr_t{3}), 4u);
          }
          cp_async_mbar_arrive(bar);
          if (++in_grp == chunks_per_group) in_grp = 0, ++grp;
        }
      };
      // The first round of stages: weights before griddepcontrol.wait (they do not depend on the previous kernel),
      // then x_perm, the previous kernel's output.
      const int first = min(TL::kStages, c_end - c_begin);
      for (int s = 0; s < first; ++s) load_weights(smem + s * TL::kStageBytes, c_begin + s, &full[s]);
      pdl_wait();
      if (lane == 0)
        for (int s = 0; s < first; ++s) tma_load_2d(smem + s * TL::kStageBytes, &tmap_x, &full[s], (c_begin + s) * 128, m0);
      int stage = 0;
      uint32_t phase = 1;  // the next round (only reached when first == kStages)
      for (int c = c_begin + first; c < c_end; ++c) {
        mbar_wait(&empty[stage], phase ^ 1);  // the consumers released the stage's previous chunk
        unsigned char* st = smem + stage * TL::kStageBytes;
        load_weights(st, c, &full[stage]);
        if (lane == 0) tma_load_2d(st, &tmap_x, &full[stage], c * 128, m0);
        if (++stage == TL::kStages) stage = 0, phase ^= 1;
      }
    }
    if (gridDim.z > 1) {  // matches the consumers' two cluster barriers of the exchange
      cluster_sync();
      cluster_sync();
    }
    return;
  }

  // -------------------------------------------------------------------- consumers
  setmaxnreg_inc<232>();
  const int ctid = threadIdx.x - 128, cw = ctid / 32, lane = ctid % 32, g = lane / 4, t = lane % 4;
  const int tile = tile0 + cw;  // cw = 4 · consumer + warp
  const bool tvalid = tile < tiles;
  int srow[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) srow[h] = min(16 * tile + g + 8 * h, p.N - 1);
  float acc[TL::kAccRegs] = {};
  float part[TL::kBuffers][TL::kAccRegs];  // grouped: the products of each chunk in flight
  uint32_t a[TL::kBuffers][4][4];          // the A fragments of each chunk in flight
  float sc[TL::kBuffers][2];               // grouped: the scales of rows g, g + 8 of each chunk in flight
  typename Off::type off[2];
  if constexpr (!TL::GROUPED) {
#pragma unroll
    for (int h = 0; h < 2; ++h) off[h] = Off::make(p.zp[srow[h]]);
  }
  int stage = 0, grp = c_begin / chunks_per_group, in_grp = c_begin % chunks_per_group;
  uint32_t phase = 0;

  // Chunk in `stage` into buffer B: wait for its data, dequantize, issue its 4 wgmmas (one commit group).
  auto issue = [&](auto buffer) {
    constexpr int B = decltype(buffer)::value;
    mbar_wait(&full[stage], phase);
    const unsigned char* st = smem + stage * TL::kStageBytes;
    const uint4 wv = *reinterpret_cast<const uint4*>(st + TL::kXBytes + cw * 512 + lane * 16);
    if constexpr (TL::GROUPED) {
      const unsigned char* q = st + TL::kXBytes + TL::kWBytes;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * cw + g + 8 * h;  // this CTA's row of srow[h]
        sc[B][h] = *reinterpret_cast<const float*>(q + 8 * r);
        const uint32_t zw = *reinterpret_cast<const uint32_t*>(q + 8 * r + 4);
        const int shift = 8 * static_cast<int>(
                                  reinterpret_cast<uintptr_t>(p.zp + static_cast<size_t>(srow[h]) * groups + grp) & 3);
        off[h] = Off::make(static_cast<int8_t>(zw >> shift));
      }
      if (++in_grp == chunks_per_group) in_grp = 0, ++grp;
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) fragment<T, 4>(wv, s, off, a[B][s]);
    const uint64_t desc = smem_desc_sw128(smem_base + stage * TL::kStageBytes);
    if constexpr (TL::GROUPED) fence_regs(part[B]);
    else fence_regs(acc);
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      if constexpr (TL::GROUPED)
        WgmmaRS<T, TL::kTokens>::mma(part[B], a[B][s], desc + 2 * s, s > 0);
      else
        WgmmaRS<T, TL::kTokens>::mma(acc, a[B][s], desc + 2 * s, 1);
    }
    wgmma_commit();
  };
  // After buffer B's wgmmas completed: its registers are free, its stage goes back to the producer, and (grouped)
  // its products, scaled, join the sum.
  auto retire = [&](auto buffer, int its_stage) {
    constexpr int B = decltype(buffer)::value;
#pragma unroll
    for (int s = 0; s < 4; ++s) fence_regs(a[B][s]);  // A registers stay untouched until here
    if (lane == 0) mbar_arrive(&empty[its_stage]);
    if constexpr (TL::GROUPED) {
      fence_regs(part[B]);
#pragma unroll
      for (int i = 0; i < TL::kAccRegs; ++i) acc[i] = fmaf(sc[B][(i % 4) / 2], part[B][i], acc[i]);
    }
  };
  using Buf0 = std::integral_constant<int, 0>;
  using Buf1 = std::integral_constant<int, TL::kBuffers - 1>;
  int in_flight = -1;  // two buffers: the stage of the chunk whose wgmmas may still run
  auto step = [&](auto buffer) {
    constexpr int B = decltype(buffer)::value;
    issue(buffer);
    if constexpr (TL::kBuffers == 1) {
      wgmma_wait<0>();
      retire(buffer, stage);
    } else {
      wgmma_wait<1>();  // the previous chunk's wgmmas are done (this one's may run on)
      if (in_flight >= 0) retire(std::integral_constant<int, 1 - B>{}, in_flight);
      in_flight = stage;
    }
    if (++stage == TL::kStages) stage = 0, phase ^= 1;
  };
#pragma unroll 1
  for (int c = c_begin; c < c_end; c += TL::kBuffers) {
    step(Buf0{});
    if (TL::kBuffers == 2 && c + 1 < c_end) step(Buf1{});
  }
  if constexpr (TL::kBuffers == 2) {
    wgmma_wait<0>();
    if (in_flight >= 0) {  // the last chunk: buffer 0 when the CTA's chunk count is odd
      if ((c_end - c_begin) % 2 == 1) retire(Buf0{}, in_flight);
      else retire(Buf1{}, in_flight);
    }
  }
  fence_regs(acc);
  pdl_wait();  // y may reuse memory the previous kernel still read

  // acc[4 j + i]: row 16 tile + g + 8 (i / 2), token m0 + 8 j + 2 t + i % 2.
  auto store = [&](int i, float v) {
    const int n = 16 * tile + g + 8 * ((i % 4) / 2), m = m0 + 8 * (i / 4) + 2 * t + i % 2;
    if (tvalid && n < p.N && m < p.M) store_output<TL>(p, m, n, v);
  };
  const int splits = gridDim.z;
  if (splits == 1) {
#pragma unroll
    for (int i = 0; i < TL::kAccRegs; ++i) store(i, acc[i]);
    return;
  }
  // Split K: the ring is free once every consumer is past its last chunk (the producer loads nothing more).
  fence_proxy_async_smem();
  named_barrier_sync(1, 128 * TL::WG);
  float4* red = reinterpret_cast<float4*>(smem);  // red[j · 128 WG + ctid]: this CTA's accumulator quad j
#pragma unroll
  for (int j = 0; j < TL::kAccRegs / 4; ++j)
    red[j * 128 * TL::WG + ctid] = make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]);
  cluster_sync();  // the partials of every CTA of the cluster are written
  const uint32_t rank = cluster_ctarank();
#pragma unroll
  for (int j = 0; j < TL::kAccRegs / 4; ++j) {
    if (j % splits != static_cast<int>(rank)) continue;
    const uint32_t addr = smem_base + 16u * static_cast<uint32_t>(j * 128 * TL::WG + ctid);
    int4 v[8];  // every rank's quad, loaded before any is added (splits <= 8)
#pragma unroll
    for (int r = 0; r < 8; ++r)
      if (r < splits) v[r] = ld_cluster_16(map_cluster_rank(addr, r));
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      if (r >= splits) break;
      sum.x += __int_as_float(v[r].x);
      sum.y += __int_as_float(v[r].y);
      sum.z += __int_as_float(v[r].z);
      sum.w += __int_as_float(v[r].w);
    }
    store(4 * j, sum.x);
    store(4 * j + 1, sum.y);
    store(4 * j + 2, sum.z);
    store(4 * j + 3, sum.w);
  }
  cluster_sync();  // no CTA leaves while others may still read its shared memory
#endif
}

}  // namespace qtorch_mixed
