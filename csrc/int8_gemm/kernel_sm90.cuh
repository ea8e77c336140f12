// Hopper (sm_90a) int8 GEMM: y = epilogue(x_q (M,K) s8 . w_q (N,K)^T s8 -> s32), accumulators in registers only.
//
// Warp-specialized: warpgroup 0 is the producer (one thread issues TMA loads of a BMx128 activation tile and a
// BNx128 weight tile per k-block, 128-byte swizzle, into a kStages-deep shared-memory ring with full/empty mbarriers);
// warpgroups 1 and 2 are consumers issuing wgmma.m64n{kWN}k32.s32.s8.s8 (kMW of them per k32 step, one per 64-row
// block) and applying the fused epilogue straight from the accumulator registers. Two consumer schedules:
//   cooperative (kPingpong = false): both consumers work on every tile, each on a (64*kMW) x kWN part of it
//                 (kCM x kCN parts per tile); their epilogues run together while the producer prefetches.
//   ping-pong   (kPingpong = true):  consumer c owns the CTA's tiles c, c+2, c+4, ... whole; its epilogue overlaps
//                 the other consumer's main loop, so the tensor cores stay busy through epilogues. The main loops
//                 take turns through two "order" mbarriers; besides serializing the tensor work this keeps every
//                 full-barrier wait at most one phase ahead (a parity wait further ahead would pass on an old phase).
//
// Launch modes (Sm90Args::split_k):
//   split_k == 1: persistent grid (<= one CTA per SM), tiles visited in grouped order for L2 reuse.
//   split_k  > 1 (cooperative only): one tile per cluster of split_k CTAs along K; each CTA accumulates a K slice,
//                 the partial int32 accumulators are exchanged through distributed shared memory (never global
//                 memory) and each CTA applies the epilogue to a 1/split_k slice of the tile's columns.
// With kRowSum (needed when Z_W is given), an extra wgmma m64n8k32 against an all-ones 8x128 tile accumulates
// rowsum_X[m] = sum_k x_q[m,k] exactly, at ~3% extra tensor work for kWN = 256.
#pragma once
#include <cuda.h>

#include "int8_gemm/epilogue.cuh"
#include "int8_gemm/ptx.cuh"
#include "int8_gemm/tile_order.cuh"
#include "int8_gemm/wgmma_s8.cuh"

namespace qtorch_int8 {

template <int WN, int CM, int CN, int MW, int Stages, bool Pingpong>
struct Sm90Tile {
  static constexpr int kWN = WN;             // columns per consumer warpgroup (wgmma N)
  static constexpr int kCM = CM;             // cooperative: consumer warpgroups along M
  static constexpr int kCN = CN;             // cooperative: consumer warpgroups along N
  static constexpr int kMW = MW;             // 64-row wgmma blocks per consumer warpgroup
  static constexpr int kStages = Stages;     // shared-memory ring depth
  static constexpr bool kPingpong = Pingpong;
  static constexpr int kBM = 64 * MW * CM;   // tile rows (activations)
  static constexpr int kBN = WN * CN;        // tile columns (weights / output channels)
  static constexpr int kBK = 128;            // k-block: 128 int8 = one 128-byte swizzle row
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kABytes = kBM * kBK;
  static constexpr int kBBytes = kBN * kBK;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kOnesOffset = kStages * kStageBytes;  // 8x128 all-ones tile for row sums
  static constexpr int kTableOffset = kOnesOffset + 1024;    // per-consumer column tables of the epilogue
  static constexpr int kTableWords = kColWords * WN;         // 32-bit words of one consumer's table
  static constexpr int kBarOffset = kTableOffset + kConsumers * kTableWords * 4;  // full, empty[kStages], order[2]
  static constexpr int kSmemBytes = kBarOffset + (2 * kStages + 2) * 8 + 1024;  // + slack to align the base to 1024
  static constexpr int kChunks = WN / 8;                      // 8-column accumulator chunks per 64-row block
  static constexpr int kAccRegs = WN / 2;                     // int32 accumulators per thread per 64-row block
  // Split-K exchange (cooperative, reuses the ring): int4 red[consumer][mw][chunk + row sums][128 threads].
  static constexpr int kRedBytes = kConsumers * MW * (kChunks + 1) * 128 * 16;
  static_assert(Pingpong ? CM * CN == 1 : CM * CN == kConsumers, "consumer layout must cover the tile");
  static_assert(MW * kAccRegs <= 128, "accumulators must fit the 232-register consumer budget");
  static_assert(kRedBytes <= kStages * kStageBytes, "split-K exchange buffer must fit in the ring");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90 is 227 KB");
};

struct Sm90Args {
  int32_t M, N, K;
  int32_t tiles_m, tiles_n;  // tile grid: ceil(M/BM) x ceil(N/BN)
  int32_t k_blocks;          // ceil(K/128)
  int32_t split_k;           // CTAs per cluster along K; 1 = persistent mode (always 1 for ping-pong)
  EpilogueParams epi;
};

// Epilogue of one 8-column accumulator chunk: rows row0 and row0 + 8, columns n and n + 1 (= table columns c, c + 1).
template <int kOut, bool kRowSum, int kCols>
__device__ __forceinline__ void sm90_epilogue_chunk(const EpilogueParams& p, const uint32_t* table, int c, int row0,
                                                    int n, const RowTerms& r0, const RowTerms& r1, int32_t a0,
                                                    int32_t a1, int32_t a2, int32_t a3) {
  if (n >= p.N) return;
  ColTerms c0, c1;
  read_col_pair<kOut>(table, kCols, c, c0, c1);
  if (row0 < p.M) store_pair<kOut, kRowSum>(p, row0, n, r0, c0, c1, a0, a1);
  if (row0 + 8 < p.M) store_pair<kOut, kRowSum>(p, row0 + 8, n, r1, c0, c1, a2, a3);
}

template <class T, int kOut, bool kRowSum>
__global__ void __launch_bounds__(T::kThreads, 1)
    int8_gemm_sm90_kernel(const __grid_constant__ CUtensorMap tmap_x,  // x_q (M, K) s8, box 128 x kBM, SW128
                          const __grid_constant__ CUtensorMap tmap_w,  // w_q (N, K) s8, box 128 x kBN, SW128
                          const Sm90Args args) {                       // sizes, split, epilogue parameters
#if defined(QTORCH_SM90_ENABLED)
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw_addr = smem_u32(smem_raw);
  uint8_t* smem = smem_raw + ((1024 - (raw_addr & 1023)) & 1023);  // 1024-aligned for the 128-byte swizzle
  const uint32_t smem_addr = smem_u32(smem);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + T::kBarOffset);
  uint64_t* empty = full + T::kStages;
  uint64_t* order = empty + T::kStages;  // ping-pong: consumer c may start a main loop once order[c] completes

  const int warpgroup = threadIdx.x / 128;
  const int split = T::kPingpong ? 1 : args.split_k;
  const int num_tiles = args.tiles_m * args.tiles_n;
  const uint32_t rank = split > 1 ? cluster_ctarank() : 0;
  // Tiles of this CTA: tile_begin + i * tile_step (persistent), or exactly its cluster's tile (split mode).
  const int tile_begin = split > 1 ? static_cast<int>(blockIdx.x) / split : static_cast<int>(blockIdx.x);
  const int tile_step = split > 1 ? num_tiles : static_cast<int>(gridDim.x);
  const int kb_begin = static_cast<int>((static_cast<int64_t>(args.k_blocks) * rank) / split);
  const int kb_end = static_cast<int>((static_cast<int64_t>(args.k_blocks) * (rank + 1)) / split);
  const int kb_count = kb_end - kb_begin;  // k-blocks per tile of this CTA

  if (threadIdx.x == 0) {
    for (int s = 0; s < T::kStages; ++s) {
      mbar_init(&full[s], 1);                                    // the producer's arrive.expect_tx
      mbar_init(&empty[s], T::kPingpong ? 4 : 4 * T::kConsumers);  // one arrival per consuming warp
    }
    mbar_init(&order[0], 4);  // arrivals: the 4 warps of the other consumer, after their main loop
    mbar_init(&order[1], 4);
    qtorch_ptx::fence_mbar_init();
    tma_prefetch_desc(&tmap_x);
    tma_prefetch_desc(&tmap_w);
  }
  if constexpr (kRowSum) {
    int4* ones = reinterpret_cast<int4*>(smem + T::kOnesOffset);
    for (int i = threadIdx.x; i < 1024 / 16; i += T::kThreads)
      ones[i] = make_int4(0x01010101, 0x01010101, 0x01010101, 0x01010101);
    fence_proxy_async_smem();  // generic writes, read next by wgmma (async proxy)
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ------------------------------------------------------------------ producer
    setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      int stage = 0;
      uint32_t phase = 0;
      for (int t = tile_begin; t < num_tiles; t += tile_step) {
        int tm, tn;
        grouped_tile_coords(t, args.tiles_m, args.tiles_n, tm, tn);
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          mbar_wait(&empty[stage], phase ^ 1);  // fresh barriers pass on parity 1
          mbar_arrive_expect_tx(&full[stage], T::kStageBytes);  // OOB parts of a box are zero-filled and counted
          uint8_t* a_dst = smem + stage * T::kStageBytes;
          tma_load_2d(a_dst, &tmap_x, &full[stage], kb * T::kBK, tm * T::kBM);
          tma_load_2d(a_dst + T::kABytes, &tmap_w, &full[stage], kb * T::kBK, tn * T::kBN);
          if (++stage == T::kStages) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
    if (split > 1) {  // matches the consumers' two cluster barriers of the exchange
      cluster_sync();
      cluster_sync();
    }
  } else {
    // ------------------------------------------------------------------ consumers
    setmaxnreg_inc<232>();
    const int consumer = warpgroup - 1;
    const int cm = T::kPingpong ? 0 : consumer / T::kCN;
    const int cn = T::kPingpong ? 0 : consumer % T::kCN;
    const int tid = threadIdx.x % 128;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const uint64_t ones_desc = smem_desc_sw128(smem_addr + T::kOnesOffset);
    uint32_t* table = reinterpret_cast<uint32_t*>(smem + T::kTableOffset) + consumer * T::kTableWords;

    // i: index of the tile in this CTA's sequence (the producer's order); ping-pong consumers take every other one.
    uint32_t order_phase = 0;
    for (int i = T::kPingpong ? consumer : 0;; i += T::kPingpong ? 2 : 1) {
      const int t = tile_begin + i * tile_step;
      if (t >= num_tiles) break;
      if (T::kPingpong && i > 0) {  // the other consumer has finished the main loop of tile i - 1
        mbar_wait(&order[consumer], order_phase);
        order_phase ^= 1;
      }
      int tm, tn;
      grouped_tile_coords(t, args.tiles_m, args.tiles_n, tm, tn);
      const int pos = i * kb_count;  // position of this tile's first k-block in the ring sequence
      int stage = pos % T::kStages;
      uint32_t phase = (pos / T::kStages) & 1;

      int32_t acc[T::kMW][T::kAccRegs];  // (64*kMW x kWN) s32 fragment of this warpgroup
      int32_t rs[T::kMW][4];             // row sums: rs[mw][0] -> row g, rs[mw][2] -> row g + 8
#pragma unroll
      for (int mw = 0; mw < T::kMW; ++mw) {
#pragma unroll
        for (int r = 0; r < T::kAccRegs; ++r) acc[mw][r] = 0;
#pragma unroll
        for (int r = 0; r < 4; ++r) rs[mw][r] = 0;
      }

      int prev_stage = -1;
      for (int kb = kb_begin; kb < kb_end; ++kb) {
        mbar_wait(&full[stage], phase);
        const uint32_t a_addr = smem_addr + stage * T::kStageBytes + cm * T::kMW * 64 * T::kBK;
        const uint32_t b_addr = smem_addr + stage * T::kStageBytes + T::kABytes + cn * T::kWN * T::kBK;
        const uint64_t db = smem_desc_sw128(b_addr);
#pragma unroll
        for (int mw = 0; mw < T::kMW; ++mw) {
          fence_regs(acc[mw]);
          if constexpr (kRowSum) fence_regs(rs[mw]);
        }
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < T::kBK / 32; ++k) {  // +32 bytes along K = +2 in the descriptor's address field
#pragma unroll
          for (int mw = 0; mw < T::kMW; ++mw) {
            const uint64_t da = smem_desc_sw128(a_addr + mw * 64 * T::kBK);
            WgmmaS8<T::kWN>::mma(acc[mw], da + 2 * k, db + 2 * k);
            if constexpr (kRowSum) WgmmaS8<8>::mma(rs[mw], da + 2 * k, ones_desc + 2 * k);
          }
        }
        wgmma_commit();
        wgmma_wait<1>();  // the previous k-block's wgmmas are done: release its stage
        if (prev_stage >= 0 && lane == 0) mbar_arrive(&empty[prev_stage]);
        prev_stage = stage;
        if (++stage == T::kStages) {
          stage = 0;
          phase ^= 1;
        }
      }
      wgmma_wait<0>();
#pragma unroll
      for (int mw = 0; mw < T::kMW; ++mw) {
        fence_regs(acc[mw]);
        if constexpr (kRowSum) fence_regs(rs[mw]);
      }
      if (prev_stage >= 0 && lane == 0) mbar_arrive(&empty[prev_stage]);
      if (T::kPingpong && lane == 0) mbar_arrive(&order[1 - consumer]);  // the other consumer's turn

      const int g = lane / 4;
      const int q = lane % 4;
      const int row_base = tm * T::kBM + cm * T::kMW * 64 + warp * 16 + g;  // + 64*mw (+ 8): this thread's rows
      const int n_base = tn * T::kBN + cn * T::kWN;                         // first column of this warpgroup
      const int col0 = n_base + 2 * q;                                       // columns col0 + 8j + {0, 1}
      const EpilogueParams& p = args.epi;
      // Column terms of this warpgroup's kWN columns, once per tile (barriers: the previous tile's readers are done
      // before the refill, and the refill is visible before use).
      if constexpr (kOut != kOutInt32Raw) {
        named_barrier_sync(2 + consumer, 128);
        fill_col_table(p, table, T::kWN, n_base, tid, 128);
        named_barrier_sync(2 + consumer, 128);
      }

      int j_begin = 0, j_end = T::kChunks;  // accumulator chunks this CTA writes out
      int32_t rowsum[T::kMW][2];
#pragma unroll
      for (int mw = 0; mw < T::kMW; ++mw) {
        rowsum[mw][0] = rs[mw][0];
        rowsum[mw][1] = rs[mw][2];
      }
      if (split > 1) {
        // Exchange partial accumulators through distributed shared memory. The ring is free: every loaded k-block
        // has been consumed. Each CTA adds the other CTAs' partials of its 1/split slice of the chunks (and all
        // the row sums) to its own registers.
        fence_proxy_async_smem();
        named_barrier_sync(1, 128 * T::kConsumers);  // both consumers are done reading the ring
        j_begin = static_cast<int>(rank) * T::kChunks / split;
        j_end = (static_cast<int>(rank) + 1) * T::kChunks / split;
        int4* red = reinterpret_cast<int4*>(smem);
        auto red_index = [&](int mw, int j) { return ((consumer * T::kMW + mw) * (T::kChunks + 1) + j) * 128 + tid; };
#pragma unroll
        for (int mw = 0; mw < T::kMW; ++mw) {
#pragma unroll
          for (int j = 0; j < T::kChunks; ++j)
            if (j < j_begin || j >= j_end)
              red[red_index(mw, j)] = make_int4(acc[mw][4 * j], acc[mw][4 * j + 1], acc[mw][4 * j + 2], acc[mw][4 * j + 3]);
          if constexpr (kRowSum) red[red_index(mw, T::kChunks)] = make_int4(rs[mw][0], rs[mw][1], rs[mw][2], rs[mw][3]);
        }
        cluster_sync();  // partials of every CTA of the cluster are written
        for (int other = 0; other < split; ++other) {
          if (other == static_cast<int>(rank)) continue;
#pragma unroll
          for (int mw = 0; mw < T::kMW; ++mw) {
            if constexpr (kRowSum) {
              const int4 v = ld_cluster_16(map_cluster_rank(smem_addr + red_index(mw, T::kChunks) * 16, other));
              rowsum[mw][0] += v.x;
              rowsum[mw][1] += v.z;
            }
#pragma unroll
            for (int j = 0; j < T::kChunks; ++j) {
              if (j < j_begin || j >= j_end) continue;
              const int4 v = ld_cluster_16(map_cluster_rank(smem_addr + red_index(mw, j) * 16, other));
              acc[mw][4 * j] += v.x;
              acc[mw][4 * j + 1] += v.y;
              acc[mw][4 * j + 2] += v.z;
              acc[mw][4 * j + 3] += v.w;
            }
          }
        }
      }
#pragma unroll
      for (int mw = 0; mw < T::kMW; ++mw) {
        const int row0 = row_base + mw * 64;
        const RowTerms r0 = load_row_terms(p, min(row0, p.M - 1), rowsum[mw][0]);
        const RowTerms r1 = load_row_terms(p, min(row0 + 8, p.M - 1), rowsum[mw][1]);
#pragma unroll
        for (int j = 0; j < T::kChunks; ++j) {
          if (j < j_begin || j >= j_end) continue;
          sm90_epilogue_chunk<kOut, kRowSum, T::kWN>(p, table, 8 * j + 2 * q, row0, col0 + 8 * j, r0, r1,
                                                     acc[mw][4 * j], acc[mw][4 * j + 1], acc[mw][4 * j + 2],
                                                     acc[mw][4 * j + 3]);
        }
      }
      if (split > 1) cluster_sync();  // no CTA leaves while others may still read its shared memory
    }
  }
#endif  // QTORCH_SM90_ENABLED
}

}  // namespace qtorch_int8
