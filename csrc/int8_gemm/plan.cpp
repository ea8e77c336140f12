// Kernel choice by shape and device, and the single launch entry point (torch-free).
//
// The rules are the fastest configurations the harness measured on the H200 (2026-11-28, benchmarks/NOTES.md,
// "int8 GEMM", run 2), for the LLaMA-2-7B shapes at M = 1 ... 8192 and 4096^3 / 8192^3:
//   M <= 16                      gemv16 (weight streaming; memory bound on N*K bytes)
//   M <= 32, N < 8192 on sm_90   gemv32
//   sm_90, M <= 256, one wave of 64x128 tiles (tiles <= SMs): 64x128, split-K 2 through the cluster when twice the tiles
//                                still fit (the plan sweep of 2026-12-04 evening, bench_int8_gemm.py --sweep-plans:
//                                1.02-1.25x the previous choices at M = 32-256 on the LLaMA-2-7B shapes)
//   M <= 32 (else)               64x256 split-K 2
//   sm_90, M <= 64, N or K >= 8192  64x256 split-K 2 (N >= 8192) or 4 (K >= 8192)
//   sm_90, few 128x128 tiles     128x128 cooperative, split-K 2 through the cluster (tiles*2 <= SMs): fills the chip
//   sm_90, M, N, K all large     128x256 cooperative (8192^3: 764 us vs 855 us for ping-pong 128x128)
//   sm_90, otherwise             ping-pong 128x128 (epilogue hidden behind the other consumer's main loop)
//   sm_8x, M > 32                the mma.sync kernel
#include <atomic>
#include <cmath>
#include <cstring>

#include "int8_gemm/int8_gemm.h"
#include "int8_gemm/launch_util.h"

namespace qtorch_int8 {

namespace {

bool is_sm90(int major, int minor) { return major == 9 && minor == 0; }
bool is_sm8x(int major) { return major == 8; }

constexpr Kernel kAllKernels[] = {Kernel::kSm90_128x256, Kernel::kSm90_128x128,   Kernel::kSm90_64x256,
                                  Kernel::kSm90pp_128x128, Kernel::kSm90pp_64x256, Kernel::kSm80_128x128,
                                  Kernel::kGemv16,         Kernel::kGemv32,         Kernel::kSm90_64x128};

// The forced plan, kernel in the low 16 bits and split_k above (0: none); one word so readers never see half of it.
std::atomic<int32_t> forced_plan{0};

}  // namespace

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kSm90_128x256: return "sm90_128x256";
    case Kernel::kSm90_128x128: return "sm90_128x128";
    case Kernel::kSm90_64x256: return "sm90_64x256";
    case Kernel::kSm90_64x128: return "sm90_64x128";
    case Kernel::kSm90pp_128x128: return "sm90pp_128x128";
    case Kernel::kSm90pp_64x256: return "sm90pp_64x256";
    case Kernel::kSm80_128x128: return "sm80_128x128";
    case Kernel::kGemv16: return "gemv16";
    case Kernel::kGemv32: return "gemv32";
    default: return "none";
  }
}

bool kernel_supported(Kernel k, int cc_major, int cc_minor, int M) {
  const bool portable = is_sm8x(cc_major) || is_sm90(cc_major, cc_minor);  // sm_80 SASS, or inside the sm_90a cubin
  switch (k) {
    case Kernel::kSm90_128x256:
    case Kernel::kSm90_128x128:
    case Kernel::kSm90_64x256:
    case Kernel::kSm90_64x128:
    case Kernel::kSm90pp_128x128:
    case Kernel::kSm90pp_64x256: return is_sm90(cc_major, cc_minor);
    case Kernel::kSm80_128x128: return portable;
    case Kernel::kGemv16:
    case Kernel::kGemv32: return portable && M <= kGemvMaxM;
    default: return false;
  }
}

Kernel kernel_from_name(const char* name) {
  for (Kernel k : kAllKernels)
    if (std::strcmp(kernel_name(k), name) == 0) return k;
  return Kernel::kNone;
}

void force_plan(Kernel kernel, int split_k) {
  forced_plan.store(kernel == Kernel::kNone ? 0 : (static_cast<int32_t>(kernel) | (split_k << 16)));
}

LaunchPlan choose_plan(int M, int N, int K, int cc_major, int cc_minor, int num_sms) {
  LaunchPlan plan{Kernel::kNone, 1, num_sms};
  if (!is_sm8x(cc_major) && !is_sm90(cc_major, cc_minor)) return plan;
  const int32_t forced = forced_plan.load();
  if (forced != 0 && kernel_supported(static_cast<Kernel>(forced & 0xFFFF), cc_major, cc_minor, M)) {
    plan.kernel = static_cast<Kernel>(forced & 0xFFFF);
    plan.split_k = forced >> 16;
    return plan;
  }
  if (M <= 16) {
    plan.kernel = Kernel::kGemv16;
    return plan;
  }
  if (M <= kGemvMaxM && !(is_sm90(cc_major, cc_minor) && N >= 8192)) {
    plan.kernel = Kernel::kGemv32;
    return plan;
  }
  if (!is_sm90(cc_major, cc_minor)) {
    plan.kernel = Kernel::kSm80_128x128;
    return plan;
  }
  const int tiles_64 = ceil_div(M, 64) * ceil_div(N, 128), tiles_128 = ceil_div(M, 128) * ceil_div(N, 128);
  if (M <= 256 && tiles_64 <= num_sms) {  // at most one wave of 64x128 tiles: split K 2 when that fits in the wave
    plan.kernel = Kernel::kSm90_64x128;
    plan.split_k = tiles_64 * 2 <= num_sms && ceil_div(K, 128) >= 4 ? 2 : 1;
  } else if (M <= kGemvMaxM) {  // 17..32 rows with N >= 8192: enough 64x256 tiles for a split of 2
    plan.kernel = Kernel::kSm90_64x256;
    plan.split_k = 2;
  } else if (M <= 64 && (N >= 8192 || K >= 8192)) {  // one row of 64x256 tiles: split K 2 (wide N) or 4 (long K)
    plan.kernel = Kernel::kSm90_64x256;
    plan.split_k = K >= 8192 ? 4 : 2;
  } else if (tiles_128 * 2 <= num_sms && ceil_div(K, 128) >= 4) {
    plan.kernel = Kernel::kSm90_128x128;
    plan.split_k = 2;
  } else if (M >= 4096 && N >= 8192 && K >= 8192) {
    plan.kernel = Kernel::kSm90_128x256;
  } else {
    plan.kernel = Kernel::kSm90pp_128x128;
  }
  return plan;
}

cudaError_t launch_int8_gemm(const GemmProblem& problem, const LaunchPlan& plan, cudaStream_t stream) {
  const EpilogueParams& e = problem.epi;
  if (e.M == 0 || e.N == 0) return cudaSuccess;
  if (e.M < 0 || e.N < 0 || e.N % 16 != 0 || e.K < 16 || e.K % 16 != 0) return cudaErrorInvalidValue;
  switch (plan.kernel) {
    case Kernel::kSm90_128x256:
    case Kernel::kSm90_128x128:
    case Kernel::kSm90_64x256:
    case Kernel::kSm90_64x128:
    case Kernel::kSm90pp_128x128:
    case Kernel::kSm90pp_64x256: return launch_sm90(problem, plan.kernel, plan.split_k, plan.num_sms, stream);
    case Kernel::kSm80_128x128: return launch_sm80(problem, stream);
    case Kernel::kGemv16:
    case Kernel::kGemv32: return launch_gemv(problem, plan.kernel, stream);
    default: return cudaErrorNoKernelImageForDevice;
  }
}

}  // namespace qtorch_int8
