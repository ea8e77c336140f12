// Tiled-layout fields -> exact bf16x2 / fp16x2 values of (q − Z), and the tensor-core instruction (sm_80+, torch-free).
//
// A field u = q + 2^(bits−1) (offset binary) is turned into a float without an int->float instruction by placing it
// in the low mantissa bits of a magic number whose unit in the last place is 1:
//   int4: lop3 (w >> 4i) & 0x000F000F | magic  -> halves (magic + u) for fields i and i + 4;  magic 128 (bf16) / 1024 (fp16)
//   int8: prmt places bytes under 0x64 (fp16: 1024 + u), or under 0x4B00_00 as fp32 (2^23 + u) for bf16, whose 7-bit
//         mantissa cannot hold 1024 + u; the fp32 difference is exact and converted to bf16x2 (|q − Z| <= 255 is exact)
// Subtracting (magic + 2^(bits−1) + Z) leaves q − Z exactly; the group scale S multiplies the fp32 mma result (the
// warpgroup kernel instead multiplies q − Z by S rounded to the activation dtype, as CUTLASS and Machete do: one
// accumulator, no per-chunk rescaling).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "common/global_loads.cuh"

namespace qtorch_mixed {

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t mask, uint32_t magic) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(magic));  // (a & mask) | magic
  return r;
}

template <class T>
struct Act2;

// The packed-pair operations both activation types share (the intrinsics are overloaded on the pair type T2).
template <class T2>
struct Packed2 {
  __device__ static uint32_t bits(const T2& v) { return *reinterpret_cast<const uint32_t*>(&v); }
  __device__ static T2 pairs(uint32_t a) { return *reinterpret_cast<const T2*>(&a); }
  __device__ static uint32_t sub(uint32_t a, uint32_t b) { return bits(__hsub2(pairs(a), pairs(b))); }
  __device__ static uint32_t mul(uint32_t a, uint32_t b) { return bits(__hmul2(pairs(a), pairs(b))); }
};

template <>
struct Act2<__nv_bfloat16> : Packed2<__nv_bfloat162> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic4 = 0x43004300u;  // bf16x2 (128, 128)
  // (magic + 2^(bits-1) + Z) as the value subtracted from both halves: int4 only (int8 subtracts in fp32).
  __device__ static uint32_t offset4(int z) {
    return bits(__float2bfloat162_rn(136.0f + static_cast<float>(z)));
  }
  // int8: bytes (lo, hi) of w -> bf16x2 (q_lo − Z, q_hi − Z); off = 2^23 + 128 + Z as fp32
  template <int LO, int HI>
  __device__ static uint32_t bytes2(uint32_t w, float off) {
    const float flo = __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 | LO)) - off;
    const float fhi = __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 | HI)) - off;
    return bits(__floats2bfloat162_rn(flo, fhi));
  }
  __device__ static float offset8(int z) { return 8388608.0f + 128.0f + static_cast<float>(z); }
  __device__ static uint32_t pair(float a) {  // (a, a) rounded to bf16x2
    return bits(__float2bfloat162_rn(a));
  }
  __device__ static T2 from_float2(float a, float b) { return __floats2bfloat162_rn(a, b); }
  __device__ static __nv_bfloat16 from_float(float a) { return __float2bfloat16_rn(a); }
  __device__ static float to_float(__nv_bfloat16 a) { return __bfloat162float(a); }
};

template <>
struct Act2<__half> : Packed2<__half2> {
  using T2 = __half2;
  static constexpr uint32_t kMagic4 = 0x64006400u;  // fp16x2 (1024, 1024)
  __device__ static uint32_t offset4(int z) {
    return bits(__float2half2_rn(1032.0f + static_cast<float>(z)));
  }
  // int8: bytes (lo, hi) under 0x64 -> fp16x2 (1024 + u_lo, 1024 + u_hi), minus off = (1024 + 128 + Z) x2
  template <int LO, int HI>
  __device__ static uint32_t bytes2(uint32_t w, uint32_t off) {
    return sub(__byte_perm(w, 0x64646464u, LO | (4 << 4) | (HI << 8) | (4 << 12)), off);
  }
  __device__ static uint32_t offset8(int z) {
    return bits(__float2half2_rn(1152.0f + static_cast<float>(z)));
  }
  __device__ static uint32_t pair(float a) {  // (a, a) rounded to fp16x2
    return bits(__float2half2_rn(a));
  }
  __device__ static __half from_float(float a) { return __float2half_rn(a); }
  __device__ static float to_float(__half a) { return __half2float(a); }
};

// The per-(row, group) constant subtracted from the raw fields: int4 and fp16 int8 a half2 word, bf16 int8 an fp32.
template <class T, int BITS>
struct Offset {
  using type = uint32_t;
  __device__ static type make(int z) {
    if constexpr (BITS == 4) return Act2<T>::offset4(z);
    else return Act2<T>::offset8(z);
  }
};
template <>
struct Offset<__nv_bfloat16, 8> {
  using type = float;
  __device__ static type make(int z) { return Act2<__nv_bfloat16>::offset8(z); }
};

// A-fragment registers a[0..3] of k-step s from a lane's 16-byte word group (rows g: a0, a2; rows g + 8: a1, a3).
// off[0] is row g's constant, off[1] row g + 8's.
// s is a compile-time constant after the caller's loop is unrolled (no local-memory indexing).
template <class T, int BITS>
__device__ __forceinline__ void fragment(const uint4& wv, int s, const typename Offset<T, BITS>::type (&off)[2],
                                         uint32_t (&a)[4]) {
  const uint32_t words[4] = {wv.x, wv.y, wv.z, wv.w};
  if constexpr (BITS == 4) {
    const uint32_t w = words[s];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      a[i] = Act2<T>::sub(lop3_and_or(w >> (4 * i), 0x000F000Fu, Act2<T>::kMagic4), off[i % 2]);
  } else {
    const uint32_t w0 = words[2 * s], w1 = words[2 * s + 1];
    a[0] = Act2<T>::template bytes2<0, 1>(w0, off[0]);
    a[1] = Act2<T>::template bytes2<2, 3>(w0, off[1]);
    a[2] = Act2<T>::template bytes2<0, 1>(w1, off[0]);
    a[3] = Act2<T>::template bytes2<2, 3>(w1, off[1]);
  }
}

// D (16x8 fp32) += A (16x16, row) · B (16x8, col): mma.sync m16n8k16 with bf16 or fp16 operands.
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

using qtorch_ptx::ld_stream_16;
using qtorch_ptx::ld_readonly_16;

}  // namespace qtorch_mixed
