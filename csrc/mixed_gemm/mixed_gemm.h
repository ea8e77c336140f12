// Mixed-input GEMM (bf16/fp16 activations x int4/int8 weights), torch-free host API.
//   y (M, N) = x (M, K) · Ŵᵀ + bias,  Ŵ[n, k] = S[n, k / g] · (q[n, k] − Z[n, k / g])
// q in the tiled layout of qtorch/quant/layout.py (LAYOUT_TILED), S (N, K/g) fp32 and Z (N, K/g) int8 row-major.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace qtorch_mixed {

enum class Act : int { kBF16 = 0, kFP16 = 1 };
enum class BiasKind : int { kNone = 0, kAct = 1, kFP32 = 2 };  // bias in the activation dtype or fp32

struct MixedGemmParams {
  const void* x;        // (M, K) bf16/fp16, unit column stride, rows 16-byte aligned
  const int32_t* w;     // (N_pad/16, K/CK·128) tiled weights
  const float* scale;   // (N, G) fp32, G = K / group_size
  const int8_t* zp;     // (N, G) int8
  const void* bias;     // (N,) or nullptr
  void* y;              // (M, N) activation dtype, contiguous
  int M, N, K;
  int64_t x_stride;     // elements between rows of x
  int group_size;       // divides K; a multiple of CK unless it equals K
  int bits;             // 4 or 8
  Act act;
  BiasKind bias_kind;
};

// CK of the tiled layout: values of K per 16-byte lane load.
constexpr int tiled_chunk(int bits) { return bits == 4 ? 64 : 32; }

// True when the kernels implement this problem (the binding checks the tensors; this checks the shape rules).
bool can_implement(const MixedGemmParams& p);

// y = x Ŵᵀ + bias with the dequantization in registers (any M; the tile shape is chosen from M).
cudaError_t launch_mixed_gemm(const MixedGemmParams& p, cudaStream_t stream);

// Ŵ (N, K) in the activation dtype into p.y (x, M, bias unused): S (q − Z) in fp32, rounded once.
cudaError_t launch_dequant_tiled(const MixedGemmParams& p, cudaStream_t stream);

}  // namespace qtorch_mixed
