// Launchers of the mixed-input GEMM and the tiled dequantization (torch-free): the tile shape from M.
#include "mixed_gemm/kernel.cuh"
#include "mixed_gemm/mixed_gemm.h"

namespace qtorch_mixed {

namespace {

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

template <class TL>
cudaError_t launch_tile(const MixedGemmParams& p, cudaStream_t stream) {
  const int tiles = ceil_div(p.N, 16);
  const dim3 grid(ceil_div(tiles, TL::NT), ceil_div(p.M, TL::kTokens));
  mixed_gemm_kernel<TL><<<grid, TL::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// Tile shape by M (NT 16-row weight tiles, MT 8-token tiles, U chunks in flight per warp): M <= 8 decode streams
// the weights with 4 chunks per warp in flight; larger M trades chunks in flight for token tiles.
template <class T, int BITS, bool GROUPED>
cudaError_t launch_by_m(const MixedGemmParams& p, cudaStream_t stream) {
  if (p.M <= 8) return launch_tile<Tile<T, BITS, 1, 1, 4, GROUPED>>(p, stream);
  if (p.M <= 16) return launch_tile<Tile<T, BITS, 1, 2, 4, GROUPED>>(p, stream);
  if (p.M <= 32) return launch_tile<Tile<T, BITS, 2, 4, 2, GROUPED>>(p, stream);
  return launch_tile<Tile<T, BITS, 1, 8, 1, GROUPED>>(p, stream);
}

template <class T>
cudaError_t launch_typed(const MixedGemmParams& p, cudaStream_t stream) {
  const bool grouped = p.group_size != p.K;
  if (p.bits == 4) return grouped ? launch_by_m<T, 4, true>(p, stream) : launch_by_m<T, 4, false>(p, stream);
  return grouped ? launch_by_m<T, 8, true>(p, stream) : launch_by_m<T, 8, false>(p, stream);
}

template <class T>
cudaError_t launch_dequant_typed(const MixedGemmParams& p, cudaStream_t stream) {
  const int64_t items = static_cast<int64_t>(ceil_div(p.N, 16)) * (p.K / tiled_chunk(p.bits));
  const int blocks = static_cast<int>((items + 7) / 8);
  if (p.bits == 4)
    dequant_tiled_kernel<T, 4><<<blocks, 256, 0, stream>>>(p);
  else
    dequant_tiled_kernel<T, 8><<<blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

bool can_implement(const MixedGemmParams& p) {
  if (p.bits != 4 && p.bits != 8) return false;
  const int ck = tiled_chunk(p.bits);
  if (p.K <= 0 || p.N <= 0 || p.M < 0 || p.K % ck != 0 || p.group_size <= 0 || p.K % p.group_size != 0) return false;
  return p.group_size == p.K || p.group_size % ck == 0;
}

cudaError_t launch_mixed_gemm(const MixedGemmParams& p, cudaStream_t stream) {
  if (!can_implement(p)) return cudaErrorInvalidValue;
  if (p.M == 0) return cudaSuccess;
  return p.act == Act::kBF16 ? launch_typed<__nv_bfloat16>(p, stream) : launch_typed<__half>(p, stream);
}

cudaError_t launch_dequant_tiled(const MixedGemmParams& p, cudaStream_t stream) {
  if (!can_implement(p)) return cudaErrorInvalidValue;
  return p.act == Act::kBF16 ? launch_dequant_typed<__nv_bfloat16>(p, stream) : launch_dequant_typed<__half>(p, stream);
}

}  // namespace qtorch_mixed
