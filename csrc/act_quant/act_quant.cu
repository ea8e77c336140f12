// Kernels of act_quant.h. One CTA per row: the per-token kernel keeps up to KEEP 16-byte vectors per thread in
// registers between its min/max pass and its quantize pass (rows up to 256 · KEEP vectors are read once; longer
// rows are read again from L2); the per-tensor kernel quantizes in one pass and ORs a "non-finite" flag over the row.
// Measured on the H200 (benchmarks/NOTES.md "activation quantization in CUDA"): behind Triton's kernel at every M
// (M = 2048: 15.4 vs 10.1 us with KEEP sized from K), so it is the eager choice for small M only (one C++ launch
// instead of the Triton launcher's host time); Triton's kernel serves large M and compiled graphs. A warp-per-row
// variant measured slower at every M (9.5 us at M = 1, 15.9 vs 10.9 us at M = 2048).
// r / S uses the row's correctly rounded reciprocal and two Markstein steps (exact RN(r / S), as
// triton_kernels/act_quant.py derives) when S lies in [2^-64, 2^64], div.rn otherwise.
#include "act_quant/act_quant.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/pdl.cuh"

namespace qtorch_act {

namespace {

constexpr float kFastDivMin = 5.421010862427522e-20f;  // 2^-64
constexpr float kFastDivMax = 1.8446744073709552e19f;  // 2^64

template <class T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32(float v) { return v; }

// min / max that keep NaN (fminf / fmaxf drop it).
__device__ __forceinline__ float min_nan(float a, float b) { return (a != a || a < b) ? a : b; }
__device__ __forceinline__ float max_nan(float a, float b) { return (a != a || a > b) ? a : b; }

// VEC consecutive elements of a row (16 bytes when VEC > 1).
template <class T, int VEC>
struct Vec {
  T v[VEC];
};

template <class T, int VEC>
__device__ __forceinline__ Vec<T, VEC> load_vec(const T* p) {
  if constexpr (VEC * sizeof(T) == 16) {
    Vec<T, VEC> r;
    *reinterpret_cast<uint4*>(r.v) = __ldg(reinterpret_cast<const uint4*>(p));
    return r;
  } else {
    Vec<T, VEC> r;
#pragma unroll
    for (int i = 0; i < VEC; ++i) r.v[i] = p[i];
    return r;
  }
}

// RN(r / S): fast when `recip` = RN(1 / S) is given (fast), div.rn otherwise.
struct Divider {
  float s, recip;
  bool fast;
  __device__ explicit Divider(float scale) : s(scale) {
    fast = scale >= kFastDivMin && scale <= kFastDivMax;  // False for inf / NaN scales
    recip = fast ? __frcp_rn(scale) : 0.f;
  }
  __device__ __forceinline__ float operator()(float r) const {
    if (!fast) return __fdiv_rn(r, s);
    float q = r * recip;
    q = fmaf(fmaf(-s, q, r), recip, q);
    return fmaf(fmaf(-s, q, r), recip, q);
  }
};

template <int VEC>
__device__ __forceinline__ void store_q(int8_t* p, const int8_t (&q)[VEC]) {
  if constexpr (VEC == 8) {
    *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(q);
  } else if constexpr (VEC == 4) {
    *reinterpret_cast<uint32_t*>(p) = *reinterpret_cast<const uint32_t*>(q);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) p[i] = q[i];
  }
}

template <class T, int VEC>
__device__ __forceinline__ void quantize_vec(const Vec<T, VEC>& v, const Divider& div, float z, int8_t* out) {
  alignas(8) int8_t q[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) q[i] = static_cast<int8_t>(fminf(fmaxf(rintf(div(to_f32(v.v[i]))) + z, -128.f), 127.f));
  store_q<VEC>(out, q);
}

// Block-wide (min, max) with NaN kept; every thread gets the result.
__device__ __forceinline__ void block_min_max(float& lo, float& hi) {
  __shared__ float smin[32], smax[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    lo = min_nan(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = max_nan(hi, __shfl_xor_sync(0xffffffffu, hi, o));
  }
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) {
    smin[warp] = lo;
    smax[warp] = hi;
  }
  __syncthreads();
  lo = smin[0];
  hi = smax[0];
  for (int w = 1; w < warps; ++w) {
    lo = min_nan(lo, smin[w]);
    hi = max_nan(hi, smax[w]);
  }
}

// KEEP: 16-byte vectors per thread kept in registers across the two passes (the launcher picks the smallest that
// holds the row: fewer registers, more rows in flight per SM).
template <class T, int VEC, int KEEP>
__global__ void __launch_bounds__(256) quantize_per_token_kernel(const ActQuantParams p) {
  qtorch_ptx::pdl_wait();  // x is the previous kernel's output
  qtorch_ptx::pdl_launch_dependents();
  const int m = blockIdx.x, nvec = p.K / VEC;
  const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(m) * p.x_stride;
  int8_t* q = p.q + static_cast<int64_t>(m) * p.K;
  Vec<T, VEC> keep[KEEP];
  float lo = 0.f, hi = 0.f;  // the range always holds 0
#pragma unroll
  for (int j = 0; j < KEEP; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) {
      keep[j] = load_vec<T, VEC>(x + i * VEC);
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        lo = min_nan(lo, to_f32(keep[j].v[e]));
        hi = max_nan(hi, to_f32(keep[j].v[e]));
      }
    }
  }
  for (int i = threadIdx.x + KEEP * blockDim.x; i < nvec; i += blockDim.x) {
    const Vec<T, VEC> v = load_vec<T, VEC>(x + i * VEC);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      lo = min_nan(lo, to_f32(v.v[e]));
      hi = max_nan(hi, to_f32(v.v[e]));
    }
  }
  block_min_max(lo, hi);
  float s = __fdiv_rn(hi - lo, 255.f);
  if (s == 0.f) s = 1.f;
  const float z = fminf(fmaxf(rintf(-128.f - __fdiv_rn(lo, s)), -128.f), 127.f);  // NaN row: unspecified
  const Divider div(s);
#pragma unroll
  for (int j = 0; j < KEEP; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nvec) quantize_vec<T, VEC>(keep[j], div, z, q + i * VEC);
  }
  for (int i = threadIdx.x + KEEP * blockDim.x; i < nvec; i += blockDim.x)
    quantize_vec<T, VEC>(load_vec<T, VEC>(x + i * VEC), div, z, q + i * VEC);
  if (threadIdx.x == 0) {
    p.scale[m] = s;
    p.zero_point[m] = static_cast<int32_t>(z);
  }
}

template <class T, int VEC>
__global__ void __launch_bounds__(256) quantize_per_tensor_kernel(const ActQuantParams p) {
  qtorch_ptx::pdl_wait();
  qtorch_ptx::pdl_launch_dependents();
  const int m = blockIdx.x, nvec = p.K / VEC;
  const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(m) * p.x_stride;
  int8_t* q = p.q + static_cast<int64_t>(m) * p.K;
  const float s = __ldg(p.s_in), z = static_cast<float>(__ldg(p.z_in));
  const Divider div(s);
  int nonfinite = 0;
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
    const Vec<T, VEC> v = load_vec<T, VEC>(x + i * VEC);
#pragma unroll
    for (int e = 0; e < VEC; ++e) nonfinite |= !isfinite(to_f32(v.v[e]));
    quantize_vec<T, VEC>(v, div, z, q + i * VEC);
  }
  nonfinite = __syncthreads_or(nonfinite);
  if (threadIdx.x == 0) p.scale[m] = nonfinite ? __int_as_float(0x7fffffff) : s;
}

template <class T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

// 16-byte loads need K and the row stride multiples of the vector and a 16-byte aligned base.
template <class T>
bool vectorizable(const ActQuantParams& p) {
  return p.K % kVec<T> == 0 && p.x_stride % kVec<T> == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
}

// Threads per row: enough for one or two vectors each on short rows, 256 from 512 vectors on.
int block_threads(int nvec) { return nvec <= 64 ? 64 : nvec <= 256 ? 128 : 256; }

template <class T, int VEC, bool PER_TOKEN, int KEEP = 1>
cudaError_t launch_typed(const ActQuantParams& p, cudaStream_t stream) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(p.M);
  cfg.blockDim = dim3(block_threads(p.K / VEC));
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  cfg.attrs = attr;
  cfg.numAttrs = qtorch_ptx::pdl_launch_attribute(attr[0]);
  if constexpr (PER_TOKEN) return cudaLaunchKernelEx(&cfg, quantize_per_token_kernel<T, VEC, KEEP>, p);
  else return cudaLaunchKernelEx(&cfg, quantize_per_tensor_kernel<T, VEC>, p);
}

// Per token: the smallest KEEP in {2, 4, 8} whose 256 · KEEP vectors hold the row (longer rows keep 8 and re-read).
template <class T, int VEC>
cudaError_t launch_per_token(const ActQuantParams& p, cudaStream_t stream) {
  const int nvec = p.K / VEC;
  if (nvec <= 256 * 2) return launch_typed<T, VEC, true, 2>(p, stream);
  if (nvec <= 256 * 4) return launch_typed<T, VEC, true, 4>(p, stream);
  return launch_typed<T, VEC, true, 8>(p, stream);
}

template <bool PER_TOKEN, class T>
cudaError_t launch_dtype(const ActQuantParams& p, cudaStream_t stream) {
  if constexpr (PER_TOKEN)
    return vectorizable<T>(p) ? launch_per_token<T, kVec<T>>(p, stream) : launch_per_token<T, 1>(p, stream);
  else
    return vectorizable<T>(p) ? launch_typed<T, kVec<T>, false>(p, stream) : launch_typed<T, 1, false>(p, stream);
}

template <bool PER_TOKEN>
cudaError_t launch(const ActQuantParams& p, cudaStream_t stream) {
  if (p.M < 0 || p.K <= 0) return cudaErrorInvalidValue;
  if (p.M == 0) return cudaSuccess;
  switch (p.dtype) {
    case Dtype::kBF16: return launch_dtype<PER_TOKEN, __nv_bfloat16>(p, stream);
    case Dtype::kFP16: return launch_dtype<PER_TOKEN, __half>(p, stream);
    default: return launch_dtype<PER_TOKEN, float>(p, stream);
  }
}

}  // namespace

cudaError_t launch_quantize_per_token(const ActQuantParams& p, cudaStream_t stream) { return launch<true>(p, stream); }
cudaError_t launch_quantize_per_tensor(const ActQuantParams& p, cudaStream_t stream) { return launch<false>(p, stream); }

}  // namespace qtorch_act
