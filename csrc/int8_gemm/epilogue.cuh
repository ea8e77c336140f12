// Fused epilogues of the int8 GEMM kernels, applied to int32 accumulators held in registers (torch-free).
//
//   corr[m,n] = acc[m,n] - Z_X[m]*colsum_W[n]                                   (int32, wrapping like torch int32)
//             - Z_W[n]*rowsum_X[m] + K*Z_X[m]*Z_W[n]   when w_zp is given      (rowsum_X[m] = sum_k x_q[m,k])
//             + bias_q[n]                             requant output with an int32 bias
//   float out:   y = float(corr) * (S_X[m] * S_W[n]) + bias[n]   (fp32, each op rounded to nearest, then cast)
//   requant out: q = clamp(RDPOT(SRDHM(sat(corr * 2^left), M0[n]), right) + Z_Y, -128, 127), left/right from shift[n]
//   raw out:     acc itself as int32 (used by the standalone harness to check the GEMM alone; never by the ops)
// Z_X[m], S_X[m] are per row (dynamic activation quantization) or one value for every row (static, per tensor).
// The operation order matches qtorch/ops/int8_matmul.py, so fp32 outputs equal the CPU reference bit for bit.
//
// The tiled kernels take the output kind and the presence of Z_W as template parameters (kOut, kRowSum) and read
// per-column terms from a small shared-memory table filled once per tile, so their unrolled register epilogues stay
// branch-free and compact. The small-M kernel uses the run-time forms (store_one).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "int8_gemm/epilogue_params.h"

namespace qtorch_int8 {

// Per-row terms of one output row.
struct RowTerms {
  int32_t zx;      // Z_X[m]
  float sx;        // S_X[m]
  int32_t rowsum;  // sum_k x_q[m,k] (only meaningful when w_zp is given)
};

// Per-column terms of one output column.
struct ColTerms {
  float sw;        // S_W[n]
  float bias;      // float bias (0 when absent)
  int32_t colsum;  // sum_k w_q[n,k]
  int32_t wzp;     // Z_W[n] (0 when absent)
  int32_t bias_q;  // int32 bias (requant; 0 when absent)
  int32_t m0;      // Q31 multiplier (requant)
  int32_t shift;   // n (requant)
};
constexpr int kColWords = 7;  // 32-bit words of ColTerms in a column table

__device__ __forceinline__ RowTerms load_row_terms(const EpilogueParams& p, int m, int32_t rowsum) {
  RowTerms r;
  r.zx = p.x_zp != nullptr ? __ldg(p.x_zp + (p.x_zp_per_tensor ? 0 : m)) : p.x_zp_scalar;
  r.sx = (p.out_kind <= kOutFP32) ? __ldg(p.x_scale + (p.x_scale_per_tensor ? 0 : m)) : 0.f;
  r.rowsum = rowsum;
  return r;
}

__device__ __forceinline__ ColTerms load_col_terms(const EpilogueParams& p, int n) {
  ColTerms c;
  c.sw = 0.f;
  c.bias = 0.f;
  c.colsum = p.out_kind != kOutInt32Raw ? __ldg(p.w_colsum + n) : 0;
  c.wzp = p.w_zp != nullptr ? __ldg(p.w_zp + n) : 0;
  c.bias_q = 0;
  c.m0 = 0;
  c.shift = 0;
  if (p.out_kind <= kOutFP32) {
    c.sw = __ldg(p.w_scale + n);
    if (p.bias_kind == kBiasFP32) c.bias = __ldg(static_cast<const float*>(p.bias) + n);
    if (p.bias_kind == kBiasBF16) c.bias = __bfloat162float(static_cast<const __nv_bfloat16*>(p.bias)[n]);
    if (p.bias_kind == kBiasFP16) c.bias = __half2float(static_cast<const __half*>(p.bias)[n]);
  } else if (p.out_kind == kOutInt8Requant) {
    if (p.bias_kind == kBiasInt32) c.bias_q = __ldg(static_cast<const int32_t*>(p.bias) + n);
    c.m0 = __ldg(p.multiplier + n);
    c.shift = __ldg(p.shift + n);
  }
  return c;
}

// Column table: kColWords arrays of `cols` 32-bit words (struct of arrays) for columns n0 .. n0 + cols - 1.
// Filled cooperatively by `nthreads` threads; columns past N repeat column N - 1 (never stored).
__device__ __forceinline__ void fill_col_table(const EpilogueParams& p, uint32_t* table, int cols, int n0, int tid,
                                               int nthreads) {
  for (int c = tid; c < cols; c += nthreads) {
    const ColTerms t = load_col_terms(p, min(n0 + c, p.N - 1));
    table[0 * cols + c] = __float_as_uint(t.sw);
    table[1 * cols + c] = __float_as_uint(t.bias);
    table[2 * cols + c] = static_cast<uint32_t>(t.colsum);
    table[3 * cols + c] = static_cast<uint32_t>(t.wzp);
    table[4 * cols + c] = static_cast<uint32_t>(t.bias_q);
    table[5 * cols + c] = static_cast<uint32_t>(t.m0);
    table[6 * cols + c] = static_cast<uint32_t>(t.shift);
  }
}

// Terms of table columns c and c + 1 (c even), read as 8-byte pairs; only the words kOut uses are read.
template <int kOut>
__device__ __forceinline__ void read_col_pair(const uint32_t* table, int cols, int c, ColTerms& c0, ColTerms& c1) {
  auto pair = [&](int word) { return *reinterpret_cast<const uint2*>(table + word * cols + c); };
  c0 = ColTerms{0.f, 0.f, 0, 0, 0, 0, 0};
  c1 = c0;
  if constexpr (kOut == kOutInt32Raw) return;
  const uint2 colsum = pair(2), wzp = pair(3);
  c0.colsum = static_cast<int32_t>(colsum.x);
  c1.colsum = static_cast<int32_t>(colsum.y);
  c0.wzp = static_cast<int32_t>(wzp.x);
  c1.wzp = static_cast<int32_t>(wzp.y);
  if constexpr (kOut == kOutInt8Requant) {
    const uint2 bq = pair(4), m0 = pair(5), sh = pair(6);
    c0.bias_q = static_cast<int32_t>(bq.x);
    c1.bias_q = static_cast<int32_t>(bq.y);
    c0.m0 = static_cast<int32_t>(m0.x);
    c1.m0 = static_cast<int32_t>(m0.y);
    c0.shift = static_cast<int32_t>(sh.x);
    c1.shift = static_cast<int32_t>(sh.y);
  } else {
    const uint2 sw = pair(0), bias = pair(1);
    c0.sw = __uint_as_float(sw.x);
    c1.sw = __uint_as_float(sw.y);
    c0.bias = __uint_as_float(bias.x);
    c1.bias = __uint_as_float(bias.y);
  }
}

// Integer correction modulo 2^32 (unsigned arithmetic), exactly like torch's int32 tensor ops.
__device__ __forceinline__ int32_t corrected_acc(bool has_wzp, int32_t K, const RowTerms& r, const ColTerms& c,
                                                 int32_t acc) {
  uint32_t v = static_cast<uint32_t>(acc) - static_cast<uint32_t>(r.zx) * static_cast<uint32_t>(c.colsum);
  if (has_wzp) {
    v -= static_cast<uint32_t>(c.wzp) * static_cast<uint32_t>(r.rowsum);
    v += static_cast<uint32_t>(K) * static_cast<uint32_t>(r.zx) * static_cast<uint32_t>(c.wzp);
  }
  v += static_cast<uint32_t>(c.bias_q);
  return static_cast<int32_t>(v);
}

// gemmlowp requantization (docs/DESIGN.md "Fixed-point requantization"), int64 intermediates.
// Shifts outside the contract range [-30, 31] are clamped into it (the quantizer never produces them).
__device__ __forceinline__ int8_t requantize_q31(int32_t acc, int32_t m0, int32_t shift, int32_t y_zp) {
  const int left = shift < 0 ? min(-shift, 30) : 0;
  const int right = shift > 0 ? min(shift, 31) : 0;
  int64_t x = static_cast<int64_t>(acc) * (static_cast<int64_t>(1) << left);
  x = x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : x);
  int64_t high;
  if (x == INT32_MIN && m0 == INT32_MIN) {
    high = INT32_MAX;
  } else {
    const int64_t ab = x * static_cast<int64_t>(m0);
    const int64_t nudge = ab >= 0 ? (static_cast<int64_t>(1) << 30) : (1 - (static_cast<int64_t>(1) << 30));
    high = (ab + nudge) / (static_cast<int64_t>(1) << 31);  // C++ division truncates toward zero
  }
  const int64_t mask = (static_cast<int64_t>(1) << right) - 1;
  const int64_t remainder = high & mask;
  const int64_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  const int64_t rounded = (high >> right) + (remainder > threshold ? 1 : 0);
  const int64_t q = rounded + y_zp;
  return static_cast<int8_t>(q > 127 ? 127 : (q < -128 ? -128 : q));
}

__device__ __forceinline__ float scaled_value(const RowTerms& r, const ColTerms& c, int32_t corr) {
  return __fadd_rn(__fmul_rn(__int2float_rn(corr), __fmul_rn(r.sx, c.sw)), c.bias);
}

// Writes out[m, n] and out[m, n+1] (n even; N % 16 == 0 so n + 1 < N whenever n < N) for a compile-time kind.
template <int kOut, bool kRowSum>
__device__ __forceinline__ void store_pair(const EpilogueParams& p, int m, int n, const RowTerms& r, const ColTerms& c0,
                                           const ColTerms& c1, int32_t acc0, int32_t acc1) {
  const size_t idx = static_cast<size_t>(m) * p.N + n;
  if constexpr (kOut == kOutInt32Raw) {
    *reinterpret_cast<int2*>(static_cast<int32_t*>(p.out) + idx) = make_int2(acc0, acc1);
  } else {
    const int32_t v0 = corrected_acc(kRowSum, p.K, r, c0, acc0);
    const int32_t v1 = corrected_acc(kRowSum, p.K, r, c1, acc1);
    if constexpr (kOut == kOutInt8Requant) {
      char2 q;
      q.x = requantize_q31(v0, c0.m0, c0.shift, p.y_zp);
      q.y = requantize_q31(v1, c1.m0, c1.shift, p.y_zp);
      *reinterpret_cast<char2*>(static_cast<int8_t*>(p.out) + idx) = q;
    } else {
      const float y0 = scaled_value(r, c0, v0);
      const float y1 = scaled_value(r, c1, v1);
      if constexpr (kOut == kOutBF16) {
        *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.out) + idx) = __floats2bfloat162_rn(y0, y1);
      } else if constexpr (kOut == kOutFP16) {
        *reinterpret_cast<__half2*>(static_cast<__half*>(p.out) + idx) = __floats2half2_rn(y0, y1);
      } else {
        *reinterpret_cast<float2*>(static_cast<float*>(p.out) + idx) = make_float2(y0, y1);
      }
    }
  }
}

// Writes out[m, n] alone; output kind and Z_W presence read at run time (small-M kernel's rolled epilogue).
__device__ __forceinline__ void store_one(const EpilogueParams& p, int m, int n, const RowTerms& r, const ColTerms& c,
                                          int32_t acc) {
  const size_t idx = static_cast<size_t>(m) * p.N + n;
  if (p.out_kind == kOutInt32Raw) {
    static_cast<int32_t*>(p.out)[idx] = acc;
    return;
  }
  const int32_t v = corrected_acc(p.w_zp != nullptr, p.K, r, c, acc);
  if (p.out_kind == kOutInt8Requant) {
    static_cast<int8_t*>(p.out)[idx] = requantize_q31(v, c.m0, c.shift, p.y_zp);
    return;
  }
  const float y = scaled_value(r, c, v);
  if (p.out_kind == kOutBF16) {
    static_cast<__nv_bfloat16*>(p.out)[idx] = __float2bfloat16_rn(y);
  } else if (p.out_kind == kOutFP16) {
    static_cast<__half*>(p.out)[idx] = __float2half_rn(y);
  } else {
    static_cast<float*>(p.out)[idx] = y;
  }
}

}  // namespace qtorch_int8
