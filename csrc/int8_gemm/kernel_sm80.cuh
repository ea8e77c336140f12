// Portable int8 GEMM for sm_80 / sm_86 / sm_89 (A100, A10, L4, RTX 30xx/40xx): mma.sync m16n8k32 s8 with a
// 4-stage cp.async shared-memory pipeline and ldmatrix fragment loads (torch-free).
//
// Tile 128 x 128 x 64, 8 warps (2 along M x 4 along N, 64 x 32 each). Shared-memory rows are 64 bytes (four 16-byte
// chunks); chunk c of row r is stored at chunk c ^ ((r >> 1) & 3), which makes every ldmatrix phase hit 8 distinct
// 16-byte bank groups. Out-of-range rows and the K tail are zero-filled by cp.async (src-size 0).
// With kRowSum, row sums of x_q come from the A fragments with dp4a (exact int32).
#pragma once
#include "int8_gemm/epilogue.cuh"
#include "int8_gemm/ptx.cuh"
#include "int8_gemm/tile_order.cuh"

namespace qtorch_int8 {

struct Sm80Tile {
  static constexpr int kBM = 128;
  static constexpr int kBN = 128;
  static constexpr int kBK = 64;
  static constexpr int kStages = 4;
  static constexpr int kThreads = 256;
  static constexpr int kTileBytes = kBM * kBK;  // == kBN * kBK
  static constexpr int kSmemBytes = kStages * 2 * kTileBytes;  // 64 KB: fits sm_89's 99 KB per block
};

struct Sm80Args {
  const int8_t* x;   // (M, K) s8 row-major
  const int8_t* w;   // (N, K) s8 row-major (K-major weights)
  int32_t tiles_m, tiles_n;
  EpilogueParams epi;
};

__device__ __forceinline__ uint32_t sm80_swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4));
}

// Copies the 128 x 64 tile at (row0, k0) of a (rows, K) s8 matrix into shared memory (2 chunks per thread).
__device__ __forceinline__ void sm80_load_tile(uint32_t smem_tile, const int8_t* src, int rows, int K, int row0,
                                               int k0, int tid) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int c = tid + i * Sm80Tile::kThreads;
    const int r = c / 4;
    const int ch = c % 4;
    const int grow = row0 + r;
    const int gk = k0 + ch * 16;
    const bool valid = grow < rows && gk < K;  // K % 16 == 0: a chunk is entirely in or out
    const int8_t* g = valid ? src + static_cast<size_t>(grow) * K + gk : src;
    cp_async_16(smem_tile + sm80_swizzled(r, ch), g, valid ? 16u : 0u);
  }
}

template <int kOut, bool kRowSum>
__global__ void __launch_bounds__(Sm80Tile::kThreads, kRowSum ? 1 : 2)  // 2 CTAs per SM unless row sums add registers
    int8_gemm_sm80_kernel(const Sm80Args args) {  // operands, tile grid, epilogue parameters
  using T = Sm80Tile;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t smem_base = smem_u32(smem);
  const EpilogueParams& p = args.epi;
  const int M = p.M, N = p.N, K = p.K;

  int tm, tn;
  grouped_tile_coords(blockIdx.x, args.tiles_m, args.tiles_n, tm, tn);
  const int m0 = tm * T::kBM, n0 = tn * T::kBN;
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int k_blocks = (K + T::kBK - 1) / T::kBK;

  auto stage_a = [&](int s) { return smem_base + s * 2 * T::kTileBytes; };
  auto stage_b = [&](int s) { return smem_base + s * 2 * T::kTileBytes + T::kTileBytes; };

#pragma unroll
  for (int s = 0; s < T::kStages - 1; ++s) {
    if (s < k_blocks) {
      sm80_load_tile(stage_a(s), args.x, M, K, m0, s * T::kBK, tid);
      sm80_load_tile(stage_b(s), args.w, N, K, n0, s * T::kBK, tid);
    }
    cp_async_commit();
  }

  int32_t acc[4][4][4];  // [m16 block][n8 block][fragment]: (64 x 32) s32 per warp
  int32_t rs[4][2];      // row sums of rows g and g + 8 of each m16 block (partial over this lane's K bytes)
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    rs[a][0] = rs[a][1] = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[a][b][c] = 0;
  }

  for (int kb = 0; kb < k_blocks; ++kb) {
    cp_async_wait<T::kStages - 2>();
    __syncthreads();  // stage kb landed for every thread; stage kb-1 is no longer read
    const int next = kb + T::kStages - 1;
    if (next < k_blocks) {
      sm80_load_tile(stage_a(next % T::kStages), args.x, M, K, m0, next * T::kBK, tid);
      sm80_load_tile(stage_b(next % T::kStages), args.w, N, K, n0, next * T::kBK, tid);
    }
    cp_async_commit();

    const uint32_t sa = stage_a(kb % T::kStages);
    const uint32_t sb = stage_b(kb % T::kStages);
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // two k32 steps per 64-byte k-block
      uint32_t a[4][4];
#pragma unroll
      for (int mb = 0; mb < 4; ++mb) {
        const int r = warp_m * 64 + mb * 16 + (lane % 16);
        ldmatrix_x4(a[mb], sa + sm80_swizzled(r, 2 * h + lane / 16));
      }
      uint32_t b[4][2];
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const int r = warp_n * 32 + np * 16 + (lane % 8) + (lane / 16) * 8;
        uint32_t t4[4];
        ldmatrix_x4(t4, sb + sm80_swizzled(r, 2 * h + (lane / 8) % 2));
        b[2 * np][0] = t4[0];
        b[2 * np][1] = t4[1];
        b[2 * np + 1][0] = t4[2];
        b[2 * np + 1][1] = t4[3];
      }
#pragma unroll
      for (int mb = 0; mb < 4; ++mb) {
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) mma_s8_16832(acc[mb][nb], a[mb], b[nb][0], b[nb][1]);
        if constexpr (kRowSum) {
          rs[mb][0] = byte_sum(a[mb][2], byte_sum(a[mb][0], rs[mb][0]));
          rs[mb][1] = byte_sum(a[mb][3], byte_sum(a[mb][1], rs[mb][1]));
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: it now holds the column table of this tile
  uint32_t* table = reinterpret_cast<uint32_t*>(smem);
  if constexpr (kOut != kOutInt32Raw) {
    fill_col_table(p, table, T::kBN, n0, tid, T::kThreads);
    __syncthreads();
  }

  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int mb = 0; mb < 4; ++mb) {
    int32_t rs0 = rs[mb][0], rs1 = rs[mb][1];
    if constexpr (kRowSum) {  // the four lanes of a quad hold disjoint K bytes of the same rows
      rs0 += __shfl_xor_sync(0xffffffffu, rs0, 1);
      rs0 += __shfl_xor_sync(0xffffffffu, rs0, 2);
      rs1 += __shfl_xor_sync(0xffffffffu, rs1, 1);
      rs1 += __shfl_xor_sync(0xffffffffu, rs1, 2);
    }
    const int row0 = m0 + warp_m * 64 + mb * 16 + g;
    const RowTerms r0 = load_row_terms(p, min(row0, M - 1), rs0);
    const RowTerms r1 = load_row_terms(p, min(row0 + 8, M - 1), rs1);
#pragma unroll
    for (int nb = 0; nb < 4; ++nb) {
      const int c = warp_n * 32 + nb * 8 + 2 * q;  // table column
      const int n = n0 + c;
      if (n >= N) continue;
      ColTerms c0, c1;
      read_col_pair<kOut>(table, T::kBN, c, c0, c1);
      if (row0 < M) store_pair<kOut, kRowSum>(p, row0, n, r0, c0, c1, acc[mb][nb][0], acc[mb][nb][1]);
      if (row0 + 8 < M) store_pair<kOut, kRowSum>(p, row0 + 8, n, r1, c0, c1, acc[mb][nb][2], acc[mb][nb][3]);
    }
  }
}

}  // namespace qtorch_int8
