// Mixed-input GEMM kernel: y = x · Ŵᵀ + bias with the int4/int8 weights dequantized in registers (sm_80+, torch-free).
//
// Swapped operands: the tensor-core A operand is 16 weight rows (the tiled layout gives each lane its A fragment of a
// (16 rows, CK) tile in one 16-byte load: a warp reads 512 contiguous bytes), B is 8 tokens of x read straight from
// global memory as consecutive values (the layout's K permutation, qtorch/quant/layout.py). No shared-memory staging:
// at the M this kernel serves, the layer is bound by streaming the weights once.
//
// CTA: kWarps (8, or 4) warps split K (chunk c goes to warp c % kWarps, so the CTA reads adjacent chunks at a time), NT 16-row tiles ×
// MT 8-token tiles per CTA; each warp loads U chunks before the mmas that use them (U · NT · 512 weight bytes in
// flight per warp). GROUPED: each chunk lies in one group; its mma result is scaled by S in fp32 and added
// (ŵ is never rounded); otherwise (one group per row, g = K) S multiplies the final sum. Partial sums of the warps
// meet in shared memory in a fixed order (deterministic), then bias, rounding to the activation dtype and the store.
// Launched with programmatic dependent launch (common/pdl.cuh): the weight, scale and zero-point loads of the first
// chunks are issued before pdl_wait(), x loads and the stores after it.
// (The sm_90 bulk-copy variant that streamed weights into a shared-memory ring measured 5-15 % slower at every M and
// was removed: benchmarks/NOTES.md "mixed-input GEMM v3"; so were variants prefetching the next step's weights into
// L2, which gained only on 4096² at M <= 16: "Session 9 on the H200".)
#pragma once
#include "common/global_loads.cuh"
#include "common/pdl.cuh"
#include "mixed_gemm/convert.cuh"
#include "mixed_gemm/mixed_gemm.h"

namespace qtorch_mixed {

template <class T, int BITS, int NT_, int MT_, int U_, bool GROUPED_, int MINB_ = 1, int WARPS_ = 8>
struct Tile {
  using Act = T;
  static constexpr int kBits = BITS;
  static constexpr int NT = NT_;               // 16-row weight tiles per CTA
  static constexpr int MT = MT_;               // 8-token tiles per CTA
  static constexpr int U = U_;                 // chunks per warp per step (loads in flight before computing)
  static constexpr bool GROUPED = GROUPED_;    // scale per chunk (g < K) or once at the end (g = K)
  static constexpr int kWarps = WARPS_;         // warps per CTA, splitting K (chunk c to warp c % kWarps)
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int CK = BITS == 4 ? 64 : 32;  // K values per chunk
  static constexpr int kSteps = CK / 16;          // mma k-steps per chunk
  static constexpr int kXV = CK / 32;             // 16-byte x loads per lane, token and chunk
  static constexpr int kRows = 16 * NT;
  static constexpr int kTokens = 8 * MT;
  static constexpr int kMinBlocks = MINB_;     // CTAs per SM the register budget must allow
  static constexpr int kSmemBytes = kWarps * NT * MT * 4 * 32 * 4;  // the cross-warp reduction buffer
};

// Word w (0..4·V−1) of V consecutive 16-byte vectors (w is a compile-time constant after unrolling).
template <int V>
__device__ __forceinline__ uint32_t xword(const uint4 (&v)[V], int w) {
  const uint4& q = v[w / 4];
  return (w % 4 == 0) ? q.x : (w % 4 == 1) ? q.y : (w % 4 == 2) ? q.z : q.w;
}

using qtorch_ptx::pdl_launch_dependents;
using qtorch_ptx::pdl_wait;

// What a lane needs to read its part of one CTA's (NT tiles, MT token tiles): rows, validity, x row pointers.
template <class TL>
struct LaneTiles {
  using T = typename TL::Act;
  const T* xptr[TL::MT];  // this lane's token row of each token tile, at its K offset inside a chunk
  bool xvalid[TL::MT];
  bool tvalid[TL::NT];
  int srow[TL::NT][2];    // rows g and g + 8 of each tile (clamped into [0, N): scale / zero-point reads in bounds)

  __device__ LaneTiles(const MixedGemmParams& p, int tile0, int m0, int lane) {
    const int g = lane / 4, t = lane % 4, tiles = (p.N + 15) / 16;
#pragma unroll
    for (int mt = 0; mt < TL::MT; ++mt) {
      const int m = m0 + mt * 8 + g;
      xvalid[mt] = m < p.M;
      xptr[mt] = static_cast<const T*>(p.x) + static_cast<int64_t>(min(m, p.M - 1)) * p.x_stride + t * (TL::CK / 4);
    }
#pragma unroll
    for (int nt = 0; nt < TL::NT; ++nt) {
      tvalid[nt] = tile0 + nt < tiles;
#pragma unroll
      for (int h = 0; h < 2; ++h) srow[nt][h] = min(16 * (tile0 + nt) + g + 8 * h, p.N - 1);
    }
  }

  // x of chunk c for every token tile (zeros past K or M).
  __device__ __forceinline__ void load_x(int c, int chunks, uint4 (&xv)[TL::MT][TL::kXV]) const {
#pragma unroll
    for (int mt = 0; mt < TL::MT; ++mt)
#pragma unroll
      for (int v = 0; v < TL::kXV; ++v)
        xv[mt][v] = (c < chunks && xvalid[mt]) ? ld_readonly_16(xptr[mt] + c * TL::CK + v * 8) : make_uint4(0, 0, 0, 0);
  }

  // GROUPED: S and Z of rows g, g + 8 of each tile for chunk c's group.
  __device__ __forceinline__ void load_qparams(const MixedGemmParams& p, int c, int chunks, float (&sc)[TL::NT][2],
                                               int (&zz)[TL::NT][2]) const {
    const int groups = p.K / p.group_size;
    const int grp = min(c, chunks - 1) * TL::CK / p.group_size;
#pragma unroll
    for (int nt = 0; nt < TL::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        sc[nt][h] = __ldg(p.scale + static_cast<size_t>(srow[nt][h]) * groups + grp);
        zz[nt][h] = __ldg(p.zp + static_cast<size_t>(srow[nt][h]) * groups + grp);
      }
  }
};

// acc += the chunk's products: fields -> bf16/fp16 (q − Z) in registers, the tensor-core mmas, and (GROUPED) the
// chunk's sum scaled by S in fp32. off holds the per-row constants (set here from zz when GROUPED).
template <class TL>
__device__ __forceinline__ void mma_chunk(const uint4 (&wv)[TL::NT], const uint4 (&xv)[TL::MT][TL::kXV],
                                          const float (&sc)[TL::NT][2], const int (&zz)[TL::NT][2],
                                          typename Offset<typename TL::Act, TL::kBits>::type (&off)[TL::NT][2],
                                          float (&acc)[TL::NT][TL::MT][4]) {
  using T = typename TL::Act;
  using Off = Offset<T, TL::kBits>;
  constexpr int NT = TL::NT, MT = TL::MT;
  float part[NT][MT][4];  // GROUPED: this chunk's sum, scaled by S in fp32 below
  if constexpr (TL::GROUPED) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) off[nt][h] = Off::make(zz[nt][h]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) part[nt][mt][i] = 0.f;
    }
  }
#pragma unroll
  for (int s = 0; s < TL::kSteps; ++s) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t a[4];
      fragment<T, TL::kBits>(wv[nt], s, off[nt], a);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const uint32_t b0 = xword(xv[mt], 2 * s), b1 = xword(xv[mt], 2 * s + 1);
        if constexpr (TL::GROUPED)
          mma_16816<T>(part[nt][mt], a, b0, b1);
        else
          mma_16816<T>(acc[nt][mt], a, b0, b1);
      }
    }
  }
  if constexpr (TL::GROUPED) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][mt][i] = fmaf(sc[nt][i / 2], part[nt][mt][i], acc[nt][mt][i]);
  }
}

// y[m, n] = sum (· S[n] when g = K) + bias[n], rounded once to the activation dtype.
template <class TL>
__device__ __forceinline__ void store_output(const MixedGemmParams& p, int m, int n, float sum) {
  using T = typename TL::Act;
  if constexpr (!TL::GROUPED) sum *= __ldg(p.scale + n);
  if (p.bias_kind == BiasKind::kAct)
    sum += Act2<T>::to_float(static_cast<const T*>(p.bias)[n]);
  else if (p.bias_kind == BiasKind::kFP32)
    sum += static_cast<const float*>(p.bias)[n];
  static_cast<T*>(p.y)[static_cast<int64_t>(m) * p.N + n] = Act2<T>::from_float(sum);
}

// The warps' partial sums meet in shared memory in a fixed order (deterministic), then (g = K) the scale, the
// bias, rounding to the activation dtype and the store of the CTA's (kTokens, kRows) block of y.
template <class TL>
__device__ __forceinline__ void reduce_and_store(const MixedGemmParams& p, const float (&acc)[TL::NT][TL::MT][4],
                                                 float* red, int tile0, int m0) {
  constexpr int NT = TL::NT, MT = TL::MT, W = TL::kWarps;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  pdl_wait();  // warps without a chunk (K < 8 chunks) have not waited yet, and y is written below
  // C fragment i of lane (g, t): row g + 8 (i / 2), token 2 t + i % 2.
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) red[(((warp * NT + nt) * MT + mt) * 4 + i) * 32 + lane] = acc[nt][mt][i];
  __syncthreads();
  for (int e = threadIdx.x; e < TL::kTokens * TL::kRows; e += TL::kThreads) {
    const int row = e % TL::kRows, token = e / TL::kRows;  // rows fastest: contiguous stores along y's rows
    const int n = tile0 * 16 + row, m = m0 + token;
    if (m >= p.M || n >= p.N) continue;
    const int nt = row / 16, r16 = row % 16, mt = token / 8, t8 = token % 8;
    const int i = (r16 / 8) * 2 + t8 % 2, src = (r16 % 8) * 4 + t8 / 2;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) sum += red[(((w * NT + nt) * MT + mt) * 4 + i) * 32 + src];
    store_output<TL>(p, m, n, sum);
  }
  __syncthreads();  // red may be rewritten next
}

// g = K: the per-row constants (magic + 2^(bits−1) + Z) are loop invariants.
template <class TL>
__device__ __forceinline__ void init_offsets(const MixedGemmParams& p, const LaneTiles<TL>& lt,
                                             typename Offset<typename TL::Act, TL::kBits>::type (&off)[TL::NT][2]) {
  if constexpr (!TL::GROUPED) {
#pragma unroll
    for (int nt = 0; nt < TL::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) off[nt][h] = Offset<typename TL::Act, TL::kBits>::make(p.zp[lt.srow[nt][h]]);
  }
}

template <class TL>
__global__ void __launch_bounds__(TL::kThreads, TL::kMinBlocks) mixed_gemm_kernel(const MixedGemmParams p) {
  constexpr int NT = TL::NT, MT = TL::MT, U = TL::U, W = TL::kWarps;
  extern __shared__ float red[];  // [warp][nt][mt][i][lane], TL::kSmemBytes
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunks = p.K / TL::CK;
  const int tiles = (p.N + 15) / 16;
  const int tile_groups = (tiles + NT - 1) / NT;
  const int m0 = blockIdx.y * TL::kTokens;
  pdl_launch_dependents();  // the next layer's CTAs may start streaming their weights as this grid's SMs free up

  // Groups of NT weight tiles: one per CTA at the launcher's grid (a smaller grid would loop).
#pragma unroll 1
  for (int tg = blockIdx.x; tg < tile_groups; tg += gridDim.x) {
    const int tile0 = tg * NT;
    const LaneTiles<TL> lt(p, tile0, m0, lane);
    const int32_t* wptr[NT];  // this lane's 16 bytes of chunk 0 of each tile
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) wptr[nt] = p.w + static_cast<size_t>(min(tile0 + nt, tiles - 1)) * chunks * 128 + lane * 4;
    float acc[NT][MT][4] = {};
    typename Offset<typename TL::Act, TL::kBits>::type off[NT][2];
    init_offsets<TL>(p, lt, off);

#pragma unroll 1
    for (int c0 = warp; c0 < chunks; c0 += W * U) {
      uint4 wv[U][NT];
      uint4 xv[U][MT][TL::kXV];
      float sc[U][NT][2];
      int zz[U][NT][2];
#pragma unroll
      for (int u = 0; u < U; ++u) {  // U chunks of loads in flight before the first use: weights first
        const int c = c0 + u * W;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          wv[u][nt] = (c < chunks && lt.tvalid[nt]) ? ld_stream_16(wptr[nt] + static_cast<size_t>(c) * 128)
                                                    : make_uint4(0, 0, 0, 0);
        if constexpr (TL::GROUPED) lt.load_qparams(p, c, chunks, sc[u], zz[u]);
      }
      pdl_wait();  // x is the previous kernel's output (returns at once after the first call)
#pragma unroll
      for (int u = 0; u < U; ++u) lt.load_x(c0 + u * W, chunks, xv[u]);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (c0 + u * W >= chunks) break;  // warp-uniform
        mma_chunk<TL>(wv[u], xv[u], sc[u], zz[u], off, acc);
      }
    }
    reduce_and_store<TL>(p, acc, red, tile0, m0);
  }
}

// Ŵ (N, K) = S (q − Z) in fp32, rounded once to the activation dtype (bit-exact with qtorch::group_dequantize).
// One warp per (tile, chunk): each lane expands its 16 bytes into a (16, CK) tile in shared memory, then the warp
// writes the tile's 16 row segments (CK · 2 bytes each) with coalesced 16-byte stores.
template <class T, int BITS>
__global__ void __launch_bounds__(256) dequant_tiled_kernel(const MixedGemmParams p) {
  constexpr int CK = BITS == 4 ? 64 : 32, MASK = (1 << BITS) - 1, OFFSET = 1 << (BITS - 1);
  constexpr int kPieces = CK * static_cast<int>(sizeof(T)) / 16;  // 16-byte pieces per row segment
  __shared__ __align__(16) T tile_smem[8][16][CK + 8];  // rows padded by 16 bytes: no bank conflicts
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int chunks = p.K / CK, tiles = (p.N + 15) / 16, groups = p.K / p.group_size;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * 8 + warp;  // (tile, chunk)
  if (item >= static_cast<int64_t>(tiles) * chunks) return;
  const int tile = static_cast<int>(item / chunks), c = static_cast<int>(item % chunks);
  const uint4 wv = ld_stream_16(p.w + item * 128 + lane * 4);
  const uint32_t words[4] = {wv.x, wv.y, wv.z, wv.w};
  const int grp = c * CK / p.group_size;
  float scale[2];
  int z[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = min(16 * tile + g + 8 * h, p.N - 1);
    scale[h] = __ldg(p.scale + static_cast<size_t>(row) * groups + grp);
    z[h] = __ldg(p.zp + static_cast<size_t>(row) * groups + grp);
  }
  T (*sm)[CK + 8] = tile_smem[warp];
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (BITS == 8 && i / 2 != j % 2) continue;  // int8: word j holds registers a_{2(j%2)}, a_{2(j%2)+1}
      const int s = BITS == 4 ? j : j / 2;
      const int k = (CK / 4) * t + 4 * s + 2 * (i / 2);
      // fields of (a_i, half 0 / 1): int4 i + 4 h, int8 2 (i % 2) + h
      const int p0 = BITS == 4 ? i : 2 * (i % 2), p1 = BITS == 4 ? i + 4 : 2 * (i % 2) + 1;
      const int q0 = static_cast<int>((words[j] >> (BITS * p0)) & MASK) - OFFSET;
      const int q1 = static_cast<int>((words[j] >> (BITS * p1)) & MASK) - OFFSET;
      sm[g + 8 * (i % 2)][k] = Act2<T>::from_float(scale[i % 2] * static_cast<float>(q0 - z[i % 2]));
      sm[g + 8 * (i % 2)][k + 1] = Act2<T>::from_float(scale[i % 2] * static_cast<float>(q1 - z[i % 2]));
    }
  __syncwarp();
  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int e = lane; e < 16 * kPieces; e += 32) {
    const int r = e / kPieces, piece = e % kPieces, row = 16 * tile + r;
    if (row < p.N)
      *reinterpret_cast<uint4*>(y + static_cast<int64_t>(row) * p.K + c * CK + piece * 8) =
          *reinterpret_cast<const uint4*>(&sm[r][piece * 8]);
  }
}

}  // namespace qtorch_mixed
