// Mixed-input GEMM for larger M on sm_90a (torch-free): y = x · Ŵᵀ + bias with warpgroup MMAs whose A operand is
// the int4 or int8 weight dequantized by the consumers and whose B operand is an x tile in shared memory.
//
// Warp-specialized (the int8 GEMM's scheme, csrc/int8_gemm/kernel_sm90.cuh): warpgroup 0 is the producer, WG consumer
// warpgroups own 64 weight rows each (warp w of consumer c: 16-row tile 4·WG·blockIdx.x + 4c + w). Per 64-value K
// chunk, the producer fills a kStages-deep ring: the CTA's 4·WG weight tiles' pieces by TMA (the tiled layout's
// 512-byte tile chunks, 1 per stage for int4, 2 for int8; a tile's chunks are contiguous), grouped: each row's
// scale and zero-point word by cp.async, and the CTA's kTokens rows of x (128 bytes each, 128-byte swizzle).
// Consumers wait on the stage's "full" mbarrier, read their lane's 16 weight bytes of each tile chunk and dequantize
// them (convert.cuh; grouped: q − Z times S rounded to the activation dtype, as CUTLASS and Machete do, so every
// chunk accumulates into one accumulator; fp16 folds S·2^k per row and undoes 2^k on the sums); a stage goes back to
// the producer through the "empty" mbarrier once the wgmmas that read it are done. One chunk's wgmmas stay in flight
// (wgmma.wait 1) while the next chunk is dequantized. The dequantized fragments are the A operand itself (WgmmaRS: no
// A stores, proxy fence or named barrier), in two register sets so that one chunk's set stays untouched while its
// wgmmas run (ptxas serializes wgmmas whose input registers are written in flight: C7513); the lanes of a quad first
// exchange their weight bytes so that each holds the natural-K-order fragments (natural_k_words4/8). B is x as it is
// (natural K order), staged by one TMA per chunk. (An A-through-shared-memory variant, v5, measured 4-13 % slower
// at every M on the H200 and was removed: benchmarks/NOTES.md "Session 9 on the H200".)
//
// K order (int4): the tiled layout gives the lane of quad position t the mma.m16n8k16 A-fragment slots 8s + 4h + t
// (k-step s, half h) of its rows g, g + 8, and slot word 8s + 4h + t is natural K word 8t + 2s + h
// (qtorch/quant/layout.py): the lane holds natural words 8t..8t+7 of each row, and the quad rearranges them. int8:
// the lane's word j of a 32-value tile chunk is natural word 4t + j of both rows, rearranged the same way
// (tests/test_wgmma_operands.py checks both).
//
// K split: gridDim.z CTAs of one cluster take consecutive ranges of chunks (launch.cu picks the split so that small
// grids fill the GPU); their fp32 partials meet through distributed shared memory (16-byte loads), each CTA summing a
// share of the accumulator quads over the ranks in rank order (deterministic).
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
#include "mixed_gemm/wgmma_16bit.cuh"

namespace qtorch_mixed {

// Register A: the lanes of a quad exchange their weight words so that each holds the natural-K fragments. Every lane
// offers Q_t[j], its part for lane j, for j = t, t ^ 1, t ^ 2, t ^ 3; two xor-shuffle rounds (4 shuffles) give lane
// t each Q_{t^d}[t], placed at word d ^ t: word s of the result is lane s's part for lane t.
__device__ __forceinline__ uint4 quad_gather(uint32_t for0, uint32_t for1, uint32_t for2, uint32_t for3, int t) {
  const bool odd = t & 1, high = t & 2;
  const uint32_t from1 = __shfl_xor_sync(0xFFFFFFFFu, for1, 1);  // Q_{t^1}[t]
  const uint32_t via1 = __shfl_xor_sync(0xFFFFFFFFu, for3, 1);   // Q_{t^1}[t ^ 2]
  const uint32_t from2 = __shfl_xor_sync(0xFFFFFFFFu, for2, 2);  // Q_{t^2}[t]
  const uint32_t from3 = __shfl_xor_sync(0xFFFFFFFFu, via1, 2);  // Q_{t^3}[t]
  const uint32_t z0 = odd ? from1 : for0, z1 = odd ? for0 : from1;  // z[s] = y[s ^ (t % 2)], y[d] = Q_{t^d}[t]
  const uint32_t z2 = odd ? from3 : from2, z3 = odd ? from2 : from3;
  return high ? make_uint4(z2, z3, z0, z1) : make_uint4(z0, z1, z2, z3);  // word s = z[s ^ (t & 2)] = y[s ^ t]
}

// int4: word s of lane (g, t) must hold, in the layout's field order (fields i and i + 4: register a_i of k-step s,
// halves 0 and 1), natural pairs P = 8s + t (a_0: row g, a_1: row g + 8) and P + 4 (a_2, a_3) of K values 2P, 2P + 1.
// The tiled layout's word j of lane τ holds natural pairs 8τ + 2j + η of rows g, g + 8, pair η's even-K fields in
// byte η and odd-K fields in byte 2 + η. So lane t needs from lane s: pair η = t % 2 of its words t / 2 (→ P) and
// 2 + t / 2 (→ P + 4), combined as bytes (P.η, (P+4).η, P.(2+η), (P+4).(2+η)) = byte_perm selector 0x6240 (η = 0) or
// 0x7351 (η = 1): Q_s[t].
__device__ __forceinline__ uint4 natural_k_words4(const uint4& wv, int t) {
  const bool odd = t & 1, high = t & 2;
  const uint32_t sel_own = odd ? 0x7351u : 0x6240u, sel_other = odd ? 0x6240u : 0x7351u;  // η = t % 2, 1 − t % 2
  const uint32_t w_a = high ? wv.y : wv.x, w_b = high ? wv.w : wv.z;  // words i, 2 + i, i = t / 2: for t and t ^ 1
  const uint32_t v_a = high ? wv.x : wv.y, v_b = high ? wv.z : wv.w;  // i = 1 − t / 2: for t ^ 2 and t ^ 3
  return quad_gather(__byte_perm(w_a, w_b, sel_own), __byte_perm(w_a, w_b, sel_other), __byte_perm(v_a, v_b, sel_own),
                     __byte_perm(v_a, v_b, sel_other), t);
}

// int8 (one 32-value layout chunk): the tiled layout's word j of lane τ holds natural pair 4τ + j of rows g (bytes
// 0, 1) and g + 8 (bytes 2, 3), and fragment<T, 8> takes k-step s from words 2s (a_0, a_1) and 2s + 1 (a_2, a_3),
// which must hold natural pairs 8s + t and 8s + t + 4: word t of lanes 2s and 2s + 1. So Q_τ[t] = word t: a plain
// 4x4 transpose of the quad's words.
__device__ __forceinline__ uint4 natural_k_words8(const uint4& wv, int t) {
  const bool odd = t & 1, high = t & 2;
  const uint32_t e0 = odd ? wv.y : wv.x, e1 = odd ? wv.x : wv.y;  // e[j] = word j ^ (t % 2)
  const uint32_t e2 = odd ? wv.w : wv.z, e3 = odd ? wv.z : wv.w;
  return quad_gather(high ? e2 : e0, high ? e3 : e1, high ? e0 : e2, high ? e1 : e3, t);  // words t, t^1, t^2, t^3
}

// K values per stage of the warpgroup kernel: one 128-byte bf16/fp16 row of x per token. K and every group must be
// whole stages (launch.cu wgmma_can_implement).
constexpr int kWgmmaChunk = 64;

template <class T, int BITS, bool GROUPED_, int WG_, int TOKENS_, int STAGES_>
struct WgmmaTile {
  using Act = T;
  static constexpr int kBits = BITS;
  static constexpr bool GROUPED = GROUPED_;
  static constexpr int WG = WG_;                  // consumer warpgroups (64 weight rows each)
  static constexpr int kTokens = TOKENS_;         // wgmma N: tokens per CTA (64, 128 or 256)
  static constexpr int kStages = STAGES_;         // chunks in the shared-memory ring
  static constexpr int kThreads = 128 * (WG + 1);
  // Registers per thread: the launch gives every thread kLaunchRegs (the SM's 65536, in steps of 8); the producer
  // warpgroup gives back all but kProducerRegs and the consumers share the rest.
  static constexpr int kLaunchRegs = 65536 / kThreads / 8 * 8;
  static constexpr int kProducerRegs = 40;
  static constexpr int kFreeRegs = (kLaunchRegs * kThreads - 128 * kProducerRegs) / (128 * WG) / 8 * 8;
  static constexpr int kConsumerRegs = kFreeRegs < 232 ? kFreeRegs : 232;  // (two warpgroups: exactly 232)
  static constexpr int kRows = 64 * WG;
  static constexpr int CK = kWgmmaChunk;          // K values per stage
  static constexpr int kLayoutChunks = CK / tiled_chunk(BITS);  // the layout's 512-byte tile chunks per stage (1, 2)
  static constexpr int kXBytes = kTokens * 128;   // x box (1024-aligned: the swizzle atom)
  static constexpr int kWBytes = 4 * WG * 512 * kLayoutChunks;  // 4·WG tiles x the stage's layout chunks
  static constexpr int kQBytes = GROUPED ? kRows * 8 : 0;  // per row: scale, zero-point word
  static constexpr int kStageBytes = (kXBytes + kWBytes + kQBytes + 1023) / 1024 * 1024;
  static constexpr int kAccRegs = kTokens / 2;    // fp32 accumulators per consumer thread
  static constexpr int kRedBytes = kAccRegs * 4 * 128 * WG;  // split-K partials (reuse the ring)
  static constexpr int kBarOffset = kStages * kStageBytes;  // the mbarriers after the ring
  static constexpr int kSmemBytes = kBarOffset + 2 * kStages * 8 + 1024;  // + slack to align the base to 1024
  static_assert(kRedBytes <= kBarOffset, "the split-K exchange must fit in the ring");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90 is 227 KB");
  // a consumer holds the accumulators, two A register sets (32) and ~32 working registers
  static_assert(kConsumerRegs >= kAccRegs + 64, "too many consumer warpgroups or tokens for the register file");
};

template <class TL>
__global__ void __launch_bounds__(TL::kThreads, 1)
    mixed_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap tmap_x,  // x (M, K) as bytes, box 128 x kTokens
                            // tiled w (tiles, K/tiled_chunk·128) int32, box 128·kLayoutChunks x 4WG
                            const __grid_constant__ CUtensorMap tmap_w,
                            const MixedGemmParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename TL::Act;
  using Off = Offset<T, TL::kBits>;
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
    setmaxnreg_dec<TL::kProducerRegs>();
    const int lane = threadIdx.x % 32;
    pdl_launch_dependents();
    if (threadIdx.x < 32) {
      int grp = c_begin / chunks_per_group, in_grp = c_begin % chunks_per_group;
      // Chunk c's weights (lane 0, TMA) and grouped scale / zero-point words (every lane, cp.async) into stage st.
      auto load_weights = [&](unsigned char* st, int c, uint64_t* bar) {
        if (lane == 0) {
          mbar_arrive_expect_tx(bar, TL::kXBytes + TL::kWBytes);  // both boxes; OOB parts are zero-filled and counted
          tma_load_2d(st + TL::kXBytes, &tmap_w, bar, c * 128 * TL::kLayoutChunks, tile0);
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
      // then x, the previous kernel's output.
      const int first = min(TL::kStages, c_end - c_begin);
      for (int s = 0; s < first; ++s) load_weights(smem + s * TL::kStageBytes, c_begin + s, &full[s]);
      pdl_wait();
      if (lane == 0)
        for (int s = 0; s < first; ++s)
          tma_load_2d(smem + s * TL::kStageBytes, &tmap_x, &full[s], (c_begin + s) * 128, m0);
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
  setmaxnreg_inc<TL::kConsumerRegs>();
  const int ctid = threadIdx.x - 128, cw = ctid / 32, lane = ctid % 32, g = lane / 4, t = lane % 4;
  const int tile = tile0 + cw;  // cw = 4 · consumer + warp
  const bool tvalid = tile < tiles;
  int srow[2], zbyte[2];  // rows g, g + 8 (clamped into [0, N)); grouped: the byte of group 0's zero point in its word
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    srow[h] = min(16 * tile + g + 8 * h, p.N - 1);
    zbyte[h] = static_cast<int>(reinterpret_cast<uintptr_t>(p.zp + static_cast<size_t>(srow[h]) * groups) & 3);
  }
  // fp16, grouped: the scale folded into q − Z is an fp16 value, whose normal range starts at 2^-14. Each row's
  // scales are multiplied by 2^k (its largest scale in this CTA's K range brought to [2^E, 2^(E+1)): E = 11 for int4,
  // |q − Z| ≤ 15, and 7 for int8, ≤ 255, so every folded product stays below fp16's 65504) and its sums by 2^-k
  // before the store: exact, and tiny scales keep fp16's precision (benchmarks/NOTES.md "fp16 folded scales").
  constexpr bool kFoldShift = TL::GROUPED && std::is_same_v<T, __half>;
  float fold_scale[2] = {1.f, 1.f}, unfold_scale[2] = {1.f, 1.f};  // 2^k, 2^-k of rows g, g + 8
  if constexpr (kFoldShift) {
    constexpr int E = TL::kBits == 4 ? 11 : 7;
    const int g_begin = c_begin / chunks_per_group, g_end = (c_end + chunks_per_group - 1) / chunks_per_group;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float largest = 0.f;  // the four lanes of a row (t = 0..3) take every fourth group, then meet
      for (int gi = g_begin + t; gi < g_end; gi += 4)
        largest = fmaxf(largest, __ldg(p.scale + static_cast<size_t>(srow[h]) * groups + gi));
      largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, 1));
      largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, 2));
      // exponent field − 127 (0 and inf / NaN give ∓127 / 128: clamped, harmless there)
      const int e = static_cast<int>((__float_as_uint(largest) >> 23) & 0xFFu) - 127;
      const int k = max(-100, min(100, E - e));
      fold_scale[h] = __uint_as_float(static_cast<uint32_t>(127 + k) << 23);
      unfold_scale[h] = __uint_as_float(static_cast<uint32_t>(127 - k) << 23);
    }
  }
  float acc[TL::kAccRegs] = {};
  typename Off::type off[2];
  if constexpr (!TL::GROUPED) {
#pragma unroll
    for (int h = 0; h < 2; ++h) off[h] = Off::make(p.zp[srow[h]]);
  }
  int stage = 0, grp = c_begin / chunks_per_group, in_grp = c_begin % chunks_per_group;
  uint32_t phase = 0;

  // Waits for the chunk in `stage` and dequantizes its weights into the A fragments of its 4 k-steps (natural K
  // order).
  auto dequantize = [&](uint32_t (&a)[4][4]) {
    mbar_wait(&full[stage], phase);
    const unsigned char* st = smem + stage * TL::kStageBytes;
    // this lane's 16 bytes of each of the stage's layout chunks, rearranged across the quad into natural-K words
    uint4 wv[TL::kLayoutChunks];
#pragma unroll
    for (int u = 0; u < TL::kLayoutChunks; ++u) {
      wv[u] = *reinterpret_cast<const uint4*>(st + TL::kXBytes + (cw * TL::kLayoutChunks + u) * 512 + lane * 16);
      wv[u] = TL::kBits == 4 ? natural_k_words4(wv[u], t) : natural_k_words8(wv[u], t);
    }
    uint32_t s2[2];  // grouped: the scales of rows g, g + 8, as activation-dtype pairs
    if constexpr (TL::GROUPED) {
      const unsigned char* q = st + TL::kXBytes + TL::kWBytes;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * cw + g + 8 * h;  // this CTA's row of srow[h]
        s2[h] = Act2<T>::pair(*reinterpret_cast<const float*>(q + 8 * r) * fold_scale[h]);
        const uint32_t zw = *reinterpret_cast<const uint32_t*>(q + 8 * r + 4);
        off[h] = Off::make(static_cast<int8_t>(zw >> (8 * ((zbyte[h] + grp) & 3))));
      }
      if (++in_grp == chunks_per_group) in_grp = 0, ++grp;
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      fragment<T, TL::kBits>(wv[s / (4 / TL::kLayoutChunks)], s % (4 / TL::kLayoutChunks), off, a[s]);
      if constexpr (TL::GROUPED)
#pragma unroll
        for (int i = 0; i < 4; ++i) a[s][i] = Act2<T>::mul(a[s][i], s2[i % 2]);
    }
  };
  const uint64_t desc_stage0 = smem_desc_sw128(smem_base);  // B of stage s: + s · kStageBytes / 16
  auto release = [&](int its_stage) {
    if (lane == 0) mbar_arrive(&empty[its_stage]);
  };
  int previous = -1;  // the stage of the chunk whose wgmmas may still run
  // After issuing the chunk in `stage`: the previous chunk's wgmmas are done, so its stage and registers are free.
  auto retire_previous = [&]() {
    wgmma_wait<1>();
    if (previous >= 0) release(previous);
    previous = stage;
    if (++stage == TL::kStages) stage = 0, phase ^= 1;
  };

  // Two register sets, alternating, so that the set of the chunk in flight is never written. ptxas keeps them
  // apart (no C7513 serialization) only in this shape: a loop body of two unconditional chunks, an odd last chunk
  // after the loop.
  uint32_t a0[4][4], a1[4][4];
  auto issue = [&](uint32_t (&a)[4][4]) {
    dequantize(a);
    const uint64_t desc_b = desc_stage0 + stage * (TL::kStageBytes / 16);
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) WgmmaRS<T, TL::kTokens>::mma(acc, a[s], desc_b + 2 * s);
    wgmma_commit();
    retire_previous();
  };
  int c = c_begin;
#pragma unroll 1
  for (; c + 1 < c_end; c += 2) {
    issue(a0);
    issue(a1);
  }
  if (c < c_end) issue(a0);
  wgmma_wait<0>();
  if (previous >= 0) release(previous);
  fence_regs(acc);
  if constexpr (kFoldShift) {
#pragma unroll
    for (int i = 0; i < TL::kAccRegs; ++i) acc[i] *= unfold_scale[(i % 4) / 2];  // row g + 8 ((i % 4) / 2)
  }
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
#else
  __trap();  // a build without sm_90a code (setup.py always adds it): fail loudly rather than leave y unwritten
#endif
}

}  // namespace qtorch_mixed
