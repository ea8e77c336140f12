// Activation quantization to int8 (torch-free host API), bit-exact with qtorch.quant.affine (fp32, IEEE division,
// round half to even):
//   per token (dynamic): r_min = min(min_k x[m, k], 0), r_max = max(max_k x[m, k], 0),
//     S[m] = (r_max − r_min) / 255 (1 if 0), Z[m] = clamp(rint(−128 − r_min / S[m]), −128, 127)
//   per tensor (static): the given (S, Z); row_scale[m] = S when row m is finite, NaN otherwise (the NaN policy:
//     the int8 GEMM's epilogue multiplies by row_scale, so a non-finite input row gives a NaN output row)
//   q[m, k] = clamp(rint(x[m, k] / S) + Z, −128, 127)
// NaN in a row makes its per-token scale NaN (min/max keep NaN); the q of a non-finite row is unspecified.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace qtorch_act {

enum class Dtype : int { kBF16 = 0, kFP16 = 1, kFP32 = 2 };

struct ActQuantParams {
  const void* x;            // (M, K) unit column stride
  int64_t x_stride;         // elements between rows of x
  int8_t* q;                // (M, K) int8, contiguous
  float* scale;             // per token: (M,) S out; per tensor: (M,) row_scale out
  int32_t* zero_point;      // per token: (M,) Z out; per tensor: unused
  const float* s_in;        // per tensor: (1,) S
  const int32_t* z_in;      // per tensor: (1,) Z
  int M, K;
  Dtype dtype;
};

// One CTA per row; x's rows are read with 16-byte loads when K, the row stride and the base allow it.
cudaError_t launch_quantize_per_token(const ActQuantParams& p, cudaStream_t stream);
cudaError_t launch_quantize_per_tensor(const ActQuantParams& p, cudaStream_t stream);

}  // namespace qtorch_act
