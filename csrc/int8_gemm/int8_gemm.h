// Host API of the int8 GEMM kernels (plain C++ + CUDA runtime, torch-free): used by csrc/bindings and by the
// standalone harness benchmarks/int8_gemm_harness.cu.
//
//   y (M, N) = epilogue( x_q (M, K) s8 . w_q (N, K)^T s8 -> s32 )      (see epilogue_params.h for the epilogues)
//
// Requirements (the caller validates; the bindings turn violations into clear errors):
//   x, w: device pointers, 16-byte aligned, row-major with row stride K; 1 <= M; N % 16 == 0; K % 16 == 0, K >= 16.
//   Every vector named in EpilogueParams has the length the docs there give, on the same device.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "int8_gemm/epilogue_params.h"

namespace qtorch_int8 {

enum class Kernel : int32_t {
  kNone = 0,        // no kernel for this device
  kSm90_128x256,    // wgmma, BM=128 BN=256, 4 stages      (large M)
  kSm90_128x128,    // wgmma, BM=128 BN=128, 6 stages      (large M, ragged N, fewer tiles)
  kSm90_64x256,     // wgmma, BM=64  BN=256, 5 stages      (M <= 64-ish, with split-K)
  kSm90pp_128x128,  // wgmma ping-pong: each consumer warpgroup owns whole 128x128 tiles, 6 stages (persistent)
  kSm90pp_64x256,   // wgmma ping-pong: 64x256 tiles per consumer warpgroup, 5 stages (persistent)
  kSm80_128x128,    // mma.sync + cp.async, BM=BN=128, 4 stages (sm_80 / sm_86 / sm_89)
  kGemv16,          // small M (<= 32): 16 weight rows per CTA, mma.sync on streamed weights (sm_80+)
  kGemv32,          // small M (<= 32): 32 weight rows per CTA
  kSm90_64x128,     // wgmma, BM=64  BN=128, 8 stages      (M = 32-128: twice the N tiles of 64x256, with split-K)
};

struct LaunchPlan {
  Kernel kernel;     // which kernel
  int32_t split_k;   // sm90 kernels: CTAs per cluster along K (1 = persistent grid); others: 1
  int32_t num_sms;   // multiprocessors of the device (persistent grid size)
};

struct GemmProblem {
  const int8_t* x;      // (M, K) s8
  const int8_t* w;      // (N, K) s8
  EpilogueParams epi;   // output, sizes, epilogue vectors
};

const char* kernel_name(Kernel k);

// True when kernel k can run on a device of compute capability (major, minor) for M rows.
bool kernel_supported(Kernel k, int cc_major, int cc_minor, int M);

// Largest M the small-M kernels take.
constexpr int kGemvMaxM = 32;

// The plan used by the ops: kernel and split chosen from the shape and the device (see plan.cpp for the model), or
// the forced plan (force_plan) when one is set and its kernel runs on the device for M rows.
LaunchPlan choose_plan(int M, int N, int K, int cc_major, int cc_minor, int num_sms);

// Kernel named `name` (kernel_name's spelling), or Kernel::kNone for an unknown name.
Kernel kernel_from_name(const char* name);

// Tooling (tile sweeps): every later choose_plan in this process returns (kernel, split_k) wherever the kernel runs
// for M rows; Kernel::kNone restores the table. Launch errors (e.g. split_k > k-blocks) surface at launch.
void force_plan(Kernel kernel, int split_k);

// Launches the plan on `stream` (no synchronisation, capturable in CUDA graphs). Returns the CUDA error of the
// launch (cudaErrorInvalidValue for a plan that does not fit the problem, e.g. split_k > k-blocks).
cudaError_t launch_int8_gemm(const GemmProblem& problem, const LaunchPlan& plan, cudaStream_t stream);

// Per-family launchers (launch_sm90.cu, launch_sm80.cu, launch_gemv.cu).
cudaError_t launch_sm90(const GemmProblem& problem, Kernel kernel, int split_k, int num_sms, cudaStream_t stream);
cudaError_t launch_sm80(const GemmProblem& problem, cudaStream_t stream);
cudaError_t launch_gemv(const GemmProblem& problem, Kernel kernel, cudaStream_t stream);

}  // namespace qtorch_int8
