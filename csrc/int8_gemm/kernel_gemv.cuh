// Small-M int8 GEMM (M <= 32 tokens: decode), sm_80+ (torch-free).
//
// At small M the layer is bound by reading the N x K int8 weights once, so this kernel streams them straight from
// global memory into mma.sync registers (16-byte loads, no shared-memory staging) and uses the tensor cores with
// swapped operands: A = 16 weight rows, B = 8 tokens (mma m16n8k32), so no tensor work is wasted on padding rows.
//
// K permutation: thread (g = lane/4, q = lane%4) loads bytes [16q, 16q+16) of a 64-byte K chunk for weight rows g and
// g + 8 and for token g. Step h of the two k32 mma steps of the chunk uses registers {2h, 2h+1} of those loads as the
// fragment's "k = 4q..4q+3" and "k = 16+4q..16+4q+3" parts. The same permutation of K applies to A and B, so the dot
// products are unchanged, and every load is a coalesced 16-byte vector (a warp reads 8 rows x 64 contiguous bytes).
//
// CTA: 8 warps split K (chunk c goes to warp c % 8), kRB 16-row weight blocks per CTA; partial accumulators are
// summed across warps in shared memory (int32, never global memory) and the epilogue writes y[token, row].
// Programmatic dependent launch (common/pdl.cuh): weight loads of the first chunks are issued before pdl_wait(),
// x loads, the epilogue's reads of S_X / Z_X and the stores after it.
#pragma once
#include "int8_gemm/epilogue.cuh"
#include "common/pdl.cuh"
#include "int8_gemm/ptx.cuh"

namespace qtorch_int8 {

template <int NT, int RB>
struct GemvTile {
  static constexpr int kNT = NT;          // 8-token tiles: M <= 8 * NT
  static constexpr int kRB = RB;          // 16-row weight blocks per CTA
  static constexpr int kRows = 16 * RB;   // weight rows (output channels) per CTA
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kUnroll = 4;       // 64-byte K chunks loaded per warp before the mmas that use them
  static constexpr int kFragInts = RB * NT * 4 * 32;  // int32 accumulators per warp
};

struct GemvArgs {
  const int8_t* x;  // (M, K) s8 row-major, M <= 8 * NT
  const int8_t* w;  // (N, K) s8 row-major
  EpilogueParams epi;
};

using qtorch_ptx::pdl_launch_dependents;
using qtorch_ptx::pdl_wait;

template <class T, bool kRowSum>
__global__ void __launch_bounds__(T::kThreads, 1) int8_gemv_kernel(const GemvArgs args) {  // operands + epilogue
  __shared__ int32_t red[T::kWarps * T::kFragInts];  // [warp][rb][nt][i][lane] partial accumulators
  __shared__ int32_t red_rowsum[T::kWarps * 8 * T::kNT];  // [warp][token]
  const EpilogueParams& p = args.epi;
  const int M = p.M, N = p.N, K = p.K;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int n_base = blockIdx.x * T::kRows;
  const int chunks = (K + 63) / 64;
  pdl_launch_dependents();  // the next kernel's CTAs may start as this grid's SMs free up

  // Row pointers of this thread (clamped in range; loads of rows >= N / tokens >= M are predicated off).
  const int8_t* wrow[T::kRB][2];
  bool wvalid[T::kRB][2];
#pragma unroll
  for (int rb = 0; rb < T::kRB; ++rb)
#pragma unroll
    for (int hi = 0; hi < 2; ++hi) {
      const int n = n_base + rb * 16 + g + 8 * hi;
      wvalid[rb][hi] = n < N;
      wrow[rb][hi] = args.w + static_cast<size_t>(min(n, N - 1)) * K + 16 * q;
    }
  const int8_t* xrow[T::kNT];
  bool xvalid[T::kNT];
#pragma unroll
  for (int nt = 0; nt < T::kNT; ++nt) {
    const int m = nt * 8 + g;
    xvalid[nt] = m < M;
    xrow[nt] = args.x + static_cast<size_t>(min(m, M - 1)) * K + 16 * q;
  }

  int32_t acc[T::kRB][T::kNT][4];
  int32_t rsum[T::kNT];
#pragma unroll
  for (int nt = 0; nt < T::kNT; ++nt) {
    rsum[nt] = 0;
#pragma unroll
    for (int rb = 0; rb < T::kRB; ++rb)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[rb][nt][i] = 0;
  }

#pragma unroll 1
  for (int c0 = warp; c0 < chunks; c0 += T::kWarps * T::kUnroll) {
    uint4 wv[T::kUnroll][T::kRB][2];  // 16 weight bytes per (chunk, row block, row half)
    uint4 xv[T::kUnroll][T::kNT];     // 16 activation bytes per (chunk, token tile)
#pragma unroll
    for (int u = 0; u < T::kUnroll; ++u) {
      const int c = c0 + u * T::kWarps;
      const int k = c * 64 + 16 * q;
      const bool kin = c < chunks && k < K;  // K % 16 == 0: a 16-byte piece is entirely in or out
#pragma unroll
      for (int rb = 0; rb < T::kRB; ++rb)
#pragma unroll
        for (int hi = 0; hi < 2; ++hi)
          wv[u][rb][hi] = (kin && wvalid[rb][hi]) ? ld_stream_16(wrow[rb][hi] + c * 64) : make_uint4(0, 0, 0, 0);
    }
    pdl_wait();  // x is the previous kernel's output (returns at once after the first call)
#pragma unroll
    for (int u = 0; u < T::kUnroll; ++u) {
      const int c = c0 + u * T::kWarps;
      const bool kin = c < chunks && c * 64 + 16 * q < K;
#pragma unroll
      for (int nt = 0; nt < T::kNT; ++nt)
        xv[u][nt] = (kin && xvalid[nt]) ? ld_readonly_16(xrow[nt] + c * 64) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < T::kUnroll; ++u) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int rb = 0; rb < T::kRB; ++rb) {
          const uint32_t a[4] = {h ? wv[u][rb][0].z : wv[u][rb][0].x, h ? wv[u][rb][1].z : wv[u][rb][1].x,
                                 h ? wv[u][rb][0].w : wv[u][rb][0].y, h ? wv[u][rb][1].w : wv[u][rb][1].y};
#pragma unroll
          for (int nt = 0; nt < T::kNT; ++nt)
            mma_s8_16832(acc[rb][nt], a, h ? xv[u][nt].z : xv[u][nt].x, h ? xv[u][nt].w : xv[u][nt].y);
        }
      }
      if constexpr (kRowSum) {
#pragma unroll
        for (int nt = 0; nt < T::kNT; ++nt)
          rsum[nt] = byte_sum(xv[u][nt].w, byte_sum(xv[u][nt].z, byte_sum(xv[u][nt].y, byte_sum(xv[u][nt].x, rsum[nt]))));
      }
    }
  }

  pdl_wait();  // warps without a chunk have not waited yet; the epilogue reads S_X, Z_X (the previous kernel's)
  // Cross-warp reduction through shared memory.
#pragma unroll
  for (int rb = 0; rb < T::kRB; ++rb)
#pragma unroll
    for (int nt = 0; nt < T::kNT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) red[(((warp * T::kRB + rb) * T::kNT + nt) * 4 + i) * 32 + lane] = acc[rb][nt][i];
  if constexpr (kRowSum) {
#pragma unroll
    for (int nt = 0; nt < T::kNT; ++nt) {
      int32_t v = rsum[nt];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (q == 0) red_rowsum[warp * 8 * T::kNT + nt * 8 + g] = v;
    }
  }
  __syncthreads();

  // Output element e = token * kRows + row (rows fastest: contiguous stores along y's rows).
  for (int e = threadIdx.x; e < 8 * T::kNT * T::kRows; e += T::kThreads) {
    const int row = e % T::kRows;
    const int token = e / T::kRows;
    const int n = n_base + row;
    if (token >= M || n >= N) continue;
    // Fragment position of (row, token): C[row][token] of m16n8 block (rb, nt).
    const int rb = row / 16, r16 = row % 16, nt = token / 8, t8 = token % 8;
    const int i = (r16 / 8) * 2 + (t8 % 2);
    const int src_lane = (r16 % 8) * 4 + t8 / 2;
    int32_t sum = 0;
#pragma unroll
    for (int w = 0; w < T::kWarps; ++w) sum += red[(((w * T::kRB + rb) * T::kNT + nt) * 4 + i) * 32 + src_lane];
    int32_t rowsum = 0;
    if constexpr (kRowSum) {
#pragma unroll
      for (int w = 0; w < T::kWarps; ++w) rowsum += red_rowsum[w * 8 * T::kNT + token];
    }
    store_one(p, token, n, load_row_terms(p, token, rowsum), load_col_terms(p, n), sum);
  }
}

}  // namespace qtorch_int8
