// Launchers of the mixed-input GEMM and the tiled dequantization (torch-free): the tile shape from M.
#include "mixed_gemm/kernel.cuh"
#include "mixed_gemm/kernel_wgmma.cuh"
#include "mixed_gemm/mixed_gemm.h"

#include <cstdlib>

#include "common/launch_util.h"
#include "common/pdl.cuh"
#include "common/tensor_map.h"

namespace qtorch_mixed {

namespace {

using qtorch_ptx::ceil_div;

// Launches kKernel(args...) with `threads` per CTA, `smem` bytes of shared memory (the kernel's attribute raised once
// per device when above 48 KB), PDL, and clusters of `cluster_z` CTAs along z when above 1.
template <auto kKernel, class... Args>
cudaError_t launch_with(dim3 grid, int threads, int smem, cudaStream_t stream, int cluster_z, Args... args) {
  if (smem > 48 * 1024) {
    const cudaError_t raised =
        qtorch_ptx::ensure_max_dynamic_smem(reinterpret_cast<const void*>(kKernel), smem);
    if (raised != cudaSuccess) return raised;
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  cfg.attrs = attr;
  cfg.numAttrs = qtorch_ptx::pdl_launch_attribute(attr[0]);
  if (cluster_z > 1) {
    cudaLaunchAttribute& a = attr[cfg.numAttrs++];
    a.id = cudaLaunchAttributeClusterDimension;
    a.val.clusterDim.x = 1;
    a.val.clusterDim.y = 1;
    a.val.clusterDim.z = cluster_z;
  }
  return cudaLaunchKernelEx(&cfg, kKernel, args...);
}

template <class TL>
cudaError_t launch_tile(const MixedGemmParams& p, cudaStream_t stream) {
  const dim3 grid(ceil_div(ceil_div(p.N, 16), TL::NT), ceil_div(p.M, TL::kTokens));
  return launch_with<mixed_gemm_kernel<TL>>(grid, TL::kThreads, TL::kSmemBytes, stream, 1, p);
}

int device_sms() {  // host-only attribute query (no synchronisation), cached per device like current_cc_major
  static int cached[64] = {};  // 0: not read yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 1;
  if (cached[device] == 0) {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cached[device] = sms > 0 ? sms : 1;
  }
  return cached[device];
}

// QTORCH_MIXED_SPLITS=<1..8> forces the warpgroup kernel's K split (tuning only: benchmarks/bench_mixed_gemm.py
// --splits); unset or out of range: the rule of wgmma_splits. A split above the chunk count leaves CTAs without
// chunks, which add zeros.
int forced_splits() {
  const char* v = std::getenv("QTORCH_MIXED_SPLITS");
  const int splits = v == nullptr ? 0 : std::atoi(v);
  return splits >= 1 && splits <= 8 ? splits : 0;
}

// Clusters of `splits` CTAs (along z) of the warpgroup kernel that can be resident at once (a GPC holds whole
// clusters only, so this can be below SMs / splits); 0 when the query fails. Host-only, cached per split.
template <class TL>
int resident_clusters(int splits) {
  static int cached[9] = {};  // -1: the query failed
  if (cached[splits] == 0) {
    qtorch_ptx::ensure_max_dynamic_smem(reinterpret_cast<const void*>(mixed_gemm_wgmma_kernel<TL>), TL::kSmemBytes);
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr{};
    cfg.gridDim = dim3(1, 1, splits);
    cfg.blockDim = dim3(TL::kThreads);
    cfg.dynamicSmemBytes = TL::kSmemBytes;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = splits;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    int clusters = 0;
    const cudaError_t err = cudaOccupancyMaxActiveClusters(&clusters, mixed_gemm_wgmma_kernel<TL>, &cfg);
    cached[splits] = err == cudaSuccess && clusters > 0 ? clusters : -1;
  }
  return cached[splits] > 0 ? cached[splits] : 0;
}

// K split of the warpgroup kernel: enough CTAs for one full wave (every SM holding the CTAs its shared memory allows),
// at most 8 (a portable cluster) and at least 4 chunks (256 K values) per CTA; then lowered until every cluster of
// the grid (one per CTA of the unsplit grid, `ctas`) can be resident at once, so no cluster waits for a second wave.
template <class TL>
int wgmma_splits(int ctas, int chunks) {
  if (const int forced = forced_splits()) return forced;
  static const int per_sm = [] {
    int blocks = 1;  // (the query counts 0 blocks above 48 KB unless the kernel's limit is raised first)
    qtorch_ptx::ensure_max_dynamic_smem(reinterpret_cast<const void*>(mixed_gemm_wgmma_kernel<TL>), TL::kSmemBytes);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, mixed_gemm_wgmma_kernel<TL>, TL::kThreads, TL::kSmemBytes);
    return blocks > 0 ? blocks : 1;
  }();
  int splits = (device_sms() * per_sm) / (ctas > 0 ? ctas : 1);
  splits = splits < chunks / 4 ? splits : chunks / 4;
  splits = splits < 1 ? 1 : (splits > 8 ? 8 : splits);
  while (splits > 1 && resident_clusters<TL>(splits) > 0 && resident_clusters<TL>(splits) < ctas) --splits;
  return splits;
}

// The warpgroup kernel, reading x and the weights through TMA.
template <class TL>
cudaError_t launch_wgmma(const MixedGemmParams& p, cudaStream_t stream) {
  const int tiles = ceil_div(p.N, 16), chunks = p.K / TL::CK;
  CUtensorMap tmap_x, tmap_w;  // x (M, K) as bytes: 128-byte rows of a chunk; w (tiles, chunks · 128) int32
  // x's row stride in bytes is a multiple of 16 and its base 16-byte aligned (the binding copies x otherwise)
  cudaError_t err = qtorch_ptx::make_tensor_map_2d(&tmap_x, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.x, p.M, 2ull * p.K,
                                                   2ull * p.x_stride, 128, TL::kTokens, CU_TENSOR_MAP_SWIZZLE_128B);
  if (err != cudaSuccess) return err;
  const uint64_t layout_chunks = static_cast<uint64_t>(chunks) * TL::kLayoutChunks;
  err = qtorch_ptx::make_tensor_map_2d(&tmap_w, CU_TENSOR_MAP_DATA_TYPE_INT32, p.w, tiles, layout_chunks * 128,
                                       layout_chunks * 512, 128 * TL::kLayoutChunks, 4 * TL::WG,
                                       CU_TENSOR_MAP_SWIZZLE_NONE);
  if (err != cudaSuccess) return err;
  const int gx = ceil_div(tiles, TL::kRows / 16), gy = ceil_div(p.M, TL::kTokens);
  const int splits = wgmma_splits<TL>(gx * gy, chunks);
  return launch_with<mixed_gemm_wgmma_kernel<TL>>(dim3(gx, gy, splits), TL::kThreads, TL::kSmemBytes, stream, splits,
                                                  tmap_x, tmap_w, p);
}

// The tile shapes (NT 16-row weight tiles, MT 8-token tiles, U chunks per warp and step, CTAs per SM the registers
// must allow, warps per CTA), by index. auto_variant picks one from (bits, M) (measured on the H200:
// benchmarks/NOTES.md "mixed-input GEMM"); QTORCH_MIXED_VARIANT=<index> forces one (tuning only:
// benchmarks/bench_mixed_gemm.py --variants).
template <class T, int BITS, bool GROUPED>
cudaError_t launch_variant(int variant, const MixedGemmParams& p, cudaStream_t stream) {
  switch (variant) {  //                       NT MT  U           min CTAs/SM, warps
    case 0: return launch_tile<Tile<T, BITS, 1, 1, 4, GROUPED>>(p, stream);
    case 1: return launch_tile<Tile<T, BITS, 1, 1, 4, GROUPED, 3>>(p, stream);
    case 2: return launch_tile<Tile<T, BITS, 1, 2, 4, GROUPED>>(p, stream);
    case 3: return launch_tile<Tile<T, BITS, 1, 2, 2, GROUPED, 2>>(p, stream);
    case 4: return launch_tile<Tile<T, BITS, 2, 2, 2, GROUPED>>(p, stream);
    case 5: return launch_tile<Tile<T, BITS, 1, 4, 2, GROUPED>>(p, stream);
    case 6: return launch_tile<Tile<T, BITS, 2, 4, 2, GROUPED>>(p, stream);
    case 7: return launch_tile<Tile<T, BITS, 4, 4, 1, GROUPED>>(p, stream);
    case 8: return launch_tile<Tile<T, BITS, 1, 8, 1, GROUPED>>(p, stream);
    case 9: return launch_tile<Tile<T, BITS, 2, 8, 1, GROUPED>>(p, stream);
    // 4-warp CTAs: finer occupancy steps at ~96 registers (5 CTAs = 20 warps per SM instead of 2 x 8)
    case 10: return launch_tile<Tile<T, BITS, 1, 1, 4, GROUPED, 1, 4>>(p, stream);
    case 11: return launch_tile<Tile<T, BITS, 1, 2, 2, GROUPED, 1, 4>>(p, stream);
    case 12: return launch_tile<Tile<T, BITS, 2, 2, 2, GROUPED, 1, 4>>(p, stream);
    // sm_90a: the warp-specialized warpgroup kernel, WG consumer warpgroups (64 weight rows each) x TOKENS tokens per
    // CTA, a ring of STAGES 64-value chunks, A from registers
    //                                                     WG TOKENS STAGES
    case 13: return launch_wgmma<WgmmaTile<T, BITS, GROUPED, 2, 64, 8>>(p, stream);
    case 14: return launch_wgmma<WgmmaTile<T, BITS, GROUPED, 2, 128, 8>>(p, stream);
    case 15: return launch_wgmma<WgmmaTile<T, BITS, GROUPED, 2, 256, BITS == 4 ? 6 : 5>>(p, stream);
    case 16: return launch_wgmma<WgmmaTile<T, BITS, GROUPED, 3, 128, BITS == 4 ? 8 : 6>>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}
constexpr int kVariants = 17;
constexpr int kFirstWgmmaVariant = 13;
constexpr int kLastWgmmaVariant = 16;

// The warpgroup kernel runs on sm_90 (sm_90a code), and only where K and every group are whole stages (int8's tiled
// layout allows 32-value groups and K a multiple of 32; int4's chunk is a stage).
bool wgmma_can_implement(const MixedGemmParams& p) {
  if (qtorch_ptx::current_cc_major() != 9) return false;
  if (p.bits == 4) return true;
  return p.K % kWgmmaChunk == 0 && (p.group_size == p.K || p.group_size % kWgmmaChunk == 0);
}

// Fastest variant from the H200 sweeps of every variant on the three LLaMA-2-7B shapes (benchmarks/NOTES.md
// "mixed-input GEMM v3", least total time over the shapes by M, with programmatic dependent launch; "Session 9 on
// the H200" and "Session 10" above M = 16). The op layer's limit (qtorch/ops/weight_only.py mixed_max_m) sends
// larger M to dequantize + cuBLAS: 64; on sm_90 1024 for int4 and 256 for int8 in whole stages. Above kRegisterMaxM
// the warpgroup kernel takes the call (where wgmma_can_implement; elsewhere chosen_variant falls back to the register
// kernel's tile). Its tokens per CTA: the most (at most M) whose CTAs before the K split cover at least 40 % of the
// SMs; a K split deeper than 2 cost more than a smaller tile in the sweep (e.g. 4096² M = 128: 64 tokens x split 2
// 21.9 us, 128 x 4 29.5 us; 4096 -> 11008 M = 128: 64 tokens 1.3 waves 68.1 us, 128 tokens 86 CTAs 41.2 us).
int register_variant(int bits, int M) {  // the register kernel's tile (any GPU)
  if (M <= 8) return 0;
  if (bits == 8) return M <= 16 ? 2 : (M <= 32 ? 5 : 6);
  return M <= 16 ? 3 : (M <= 32 ? 6 : 9);
}

// The register kernel up to this M; above it the warpgroup kernel (H200, session 9, totals over the three shapes:
// M = 16 register 63.0 us vs warpgroup 65.0; M = 32 77.0 vs 65.0 for int4, 97.9 vs 67.0 for int8; M = 64 83.6 vs
// 65.7 for int4, 110.4 vs 69.9 for int8).
constexpr int kRegisterMaxM = 16;
// int8 from M = 65 to 128: three consumer warpgroups x 128 tokens (session 10: 83.8 us over the three shapes at
// M = 128 against 94.7 for the two-warpgroup tiles; at M = 64 81.3 against 70.1, and no gain for int4).
constexpr int kWgmma3x128 = 16;

int auto_variant(const MixedGemmParams& p) {
  const int M = p.M;
  if (M <= kRegisterMaxM) return register_variant(p.bits, M);
  if (p.bits == 8 && M > 64 && M <= 128) return kWgmma3x128;
  const int row_blocks = ceil_div(ceil_div(p.N, 16), 8);  // 128 weight rows per CTA
  for (int step = 2, tokens = 256; step > 0; --step, tokens /= 2)
    if (tokens <= M && 5 * row_blocks * ceil_div(M, tokens) >= 2 * device_sms()) return kFirstWgmmaVariant + step;
  return kFirstWgmmaVariant;
}

int forced_variant() {
  const char* v = std::getenv("QTORCH_MIXED_VARIANT");
  if (v == nullptr || *v == 0) return -1;
  const int i = std::atoi(v);
  return i >= 0 && i < kVariants ? i : -1;
}

// The variant launch_mixed_gemm runs for p: forced or auto, a warpgroup one only where wgmma_can_implement (otherwise
// the register kernel's tile for this M).
int chosen_variant(const MixedGemmParams& p) {
  int variant = forced_variant();
  if (variant < 0) variant = auto_variant(p);
  if (variant >= kFirstWgmmaVariant && variant <= kLastWgmmaVariant && !wgmma_can_implement(p))
    variant = register_variant(p.bits, p.M);
  return variant;
}

template <class T, int BITS, bool GROUPED>
cudaError_t launch_by_m(const MixedGemmParams& p, cudaStream_t stream) {
  return launch_variant<T, BITS, GROUPED>(chosen_variant(p), p, stream);
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
