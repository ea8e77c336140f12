// Kernel choice by shape and device, and the single launch entry point (torch-free).
//
// Hopper, M > 32: a small cost model over the wgmma tiles (cooperative with split-K in {1, 2, 4}, ping-pong
// persistent only):
//   persistent:  t = kFixedUs + waves * (max(mma_us, load_us) + epilogue_us)
//   split-K:     t = waves * (kFixedUs + max(mma_us, load_us) + epilogue_us + kExchangeUs)   (every CTA refills
//                its pipeline; a persistent CTA prefetches the next tile during the epilogue)
//   waves       = ceil(CTAs / SMs)        (persistent: CTAs = tiles; split: tiles * split, one CTA per SM)
//   mma_us      = 2*BM*BN*(K/split) / (peak_per_sm * efficiency(tile))
//   load_us     = (BM + BN) * (K/split) / l2_bytes_per_sm_us
//   epilogue_us = BM*BN / kEpilogueElemsPerUs / split for cooperative tiles, 0 for ping-pong (hidden behind the
//                 other consumer's main loop)
// The constants are first guesses (benchmarks/NOTES.md, "int8 GEMM"): the harness prints every configuration's
// measured time per shape, so the model can be recalibrated without touching the kernels.
// M <= 32 (any supported GPU): the small-M kernel, 32 weight rows per CTA when that still gives one CTA per SM,
// else 16. sm_8x, M > 32: the mma.sync kernel.
#include <cmath>

#include "int8_gemm/int8_gemm.h"
#include "int8_gemm/launch_util.h"

namespace qtorch_int8 {

namespace {

constexpr double kPeakOpsPerSmUs = 1979e12 / 132 / 1e6;  // dense int8 tensor rate of one H100/H200 SM
constexpr double kL2BytesPerSmUs = 0.08e6;               // ~10.5 TB/s of L2->SM bandwidth shared by 132 SMs
constexpr double kFixedUs = 1.0;                         // pipeline fill from DRAM
constexpr double kExchangeUs = 0.5;                      // split-K exchange through distributed shared memory
constexpr double kEpilogueElemsPerUs = 20000;            // outputs per us of one CTA's register epilogue

struct Sm90Candidate {
  Kernel kernel;
  int bm, bn;
  double efficiency;  // fraction of the tensor peak the main loop reaches
  bool pingpong;      // epilogue hidden; persistent only
};
constexpr Sm90Candidate kSm90Candidates[] = {
    {Kernel::kSm90_128x256, 128, 256, 0.75, false},
    {Kernel::kSm90_128x128, 128, 128, 0.65, false},
    {Kernel::kSm90_64x256, 64, 256, 0.62, false},
    {Kernel::kSm90pp_128x128, 128, 128, 0.70, true},
    {Kernel::kSm90pp_64x256, 64, 256, 0.70, true},
};

double sm90_cost_us(const Sm90Candidate& c, int split, int M, int N, int K, int num_sms) {
  const double tiles = static_cast<double>(ceil_div(M, c.bm)) * ceil_div(N, c.bn);
  const double ctas = tiles * split;
  const double waves = std::ceil(ctas / num_sms);
  const double k_slice = std::ceil(static_cast<double>(ceil_div(K, 128)) / split) * 128;
  const double mma_us = 2.0 * c.bm * c.bn * k_slice / (kPeakOpsPerSmUs * c.efficiency);
  const double load_us = static_cast<double>(c.bm + c.bn) * k_slice / kL2BytesPerSmUs;
  const double epilogue_us = c.pingpong ? 0.0 : static_cast<double>(c.bm) * c.bn / kEpilogueElemsPerUs / split;
  const double per_tile = (mma_us > load_us ? mma_us : load_us) + epilogue_us;
  return split > 1 ? waves * (kFixedUs + per_tile + kExchangeUs) : kFixedUs + waves * per_tile;
}

bool is_sm90(int major, int minor) { return major == 9 && minor == 0; }
bool is_sm8x(int major) { return major == 8; }

}  // namespace

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kSm90_128x256: return "sm90_128x256";
    case Kernel::kSm90_128x128: return "sm90_128x128";
    case Kernel::kSm90_64x256: return "sm90_64x256";
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
    case Kernel::kSm90pp_128x128:
    case Kernel::kSm90pp_64x256: return is_sm90(cc_major, cc_minor);
    case Kernel::kSm80_128x128: return portable;
    case Kernel::kGemv16:
    case Kernel::kGemv32: return portable && M <= kGemvMaxM;
    default: return false;
  }
}

LaunchPlan choose_plan(int M, int N, int K, int cc_major, int cc_minor, int num_sms) {
  LaunchPlan plan{Kernel::kNone, 1, num_sms};
  if (!is_sm8x(cc_major) && !is_sm90(cc_major, cc_minor)) return plan;
  if (M <= kGemvMaxM) {
    plan.kernel = ceil_div(N, 32) >= num_sms ? Kernel::kGemv32 : Kernel::kGemv16;
    return plan;
  }
  if (!is_sm90(cc_major, cc_minor)) {
    plan.kernel = Kernel::kSm80_128x128;
    return plan;
  }
  const int k_blocks = ceil_div(K, 128);
  double best = 0;
  for (const Sm90Candidate& c : kSm90Candidates) {
    // Clusters of up to 4 (the harness also checks and times 8, which needs 8 free SMs of one GPC).
    for (int split = 1; split <= (c.pingpong ? 1 : 4); split *= 2) {
      if (split > 1 && k_blocks < 2 * split) break;  // keep >= 2 k-blocks per CTA
      const double t = sm90_cost_us(c, split, M, N, K, num_sms);
      if (plan.kernel == Kernel::kNone || t < best) {
        best = t;
        plan.kernel = c.kernel;
        plan.split_k = split;
      }
    }
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
    case Kernel::kSm90pp_128x128:
    case Kernel::kSm90pp_64x256: return launch_sm90(problem, plan.kernel, plan.split_k, plan.num_sms, stream);
    case Kernel::kSm80_128x128: return launch_sm80(problem, stream);
    case Kernel::kGemv16:
    case Kernel::kGemv32: return launch_gemv(problem, plan.kernel, stream);
    default: return cudaErrorNoKernelImageForDevice;
  }
}

}  // namespace qtorch_int8
