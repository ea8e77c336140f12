// Parameters of the fused int8 GEMM epilogues (plain C++: shared by kernels, launchers, bindings and the harness).
#pragma once
#include <cstdint>

namespace qtorch_int8 {

enum OutKind : int32_t { kOutBF16 = 0, kOutFP16 = 1, kOutFP32 = 2, kOutInt8Requant = 3, kOutInt32Raw = 4 };
enum BiasKind : int32_t { kBiasNone = 0, kBiasFP32 = 1, kBiasBF16 = 2, kBiasFP16 = 3, kBiasInt32 = 4 };

struct EpilogueParams {
  void* out;                   // (M, N) row-major; bf16 / fp16 / fp32 / int8 / int32 by out_kind
  int32_t out_kind;            // OutKind
  int32_t M, N, K;             // problem size (K enters the Z_X*Z_W correction)
  const float* x_scale;        // (M,) fp32 S_X per row, or (1,) per tensor when x_scale_per_tensor (float outputs)
  const int32_t* x_zp;         // (M,) int32 Z_X per row, (1,) per tensor when x_zp_per_tensor, or nullptr: x_zp_scalar
  int32_t x_zp_scalar;         // per-tensor Z_X given by value (requant op)
  int32_t x_scale_per_tensor;  // 1: every row reads x_scale[0] (static activation quantization); 0: x_scale[m]
  int32_t x_zp_per_tensor;     // 1: every row reads x_zp[0]; 0: x_zp[m]
  const float* w_scale;        // (N,) fp32 S_W per output channel (float outputs)
  const int32_t* w_colsum;     // (N,) int32 sum_k w_q[n,k] (nullptr only for raw output)
  const int32_t* w_zp;         // (N,) int32 Z_W, or nullptr (then the kernels skip row sums)
  const void* bias;            // (N,) bias by bias_kind, or nullptr
  int32_t bias_kind;           // BiasKind
  const int32_t* multiplier;   // (N,) int32 Q31 M0 in [2^30, 2^31) or 0 (requant)
  const int32_t* shift;        // (N,) int32 n in [-30, 31] (requant)
  int32_t y_zp;                // Z_Y in [-128, 127] (requant)
};

inline bool epilogue_needs_rowsum(const EpilogueParams& p) {
  return p.out_kind != kOutInt32Raw && p.w_zp != nullptr;
}

}  // namespace qtorch_int8
