// Thin inline-PTX wrappers used by the int8 GEMM kernels (torch-free).
// sm_80+: mma.sync int8, ldmatrix, cp.async (zero-fill), dp4a row sums.
// sm_90a only (guarded by __CUDA_ARCH_FEAT_SM90_ALL so the sm_80 pass compiles): mbarrier, TMA (cp.async.bulk.tensor),
// wgmma fences, setmaxnreg, cluster barriers and distributed shared memory.
#pragma once
#include <cstdint>

#include "common/cluster.cuh"
#include "common/cp_async.cuh"
#include "common/global_loads.cuh"
#include "common/mbarrier.cuh"
#include "common/tma.cuh"
#include "common/wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QTORCH_SM90_ENABLED 1
#endif

namespace qtorch_int8 {

using qtorch_ptx::smem_u32;

// ---------------------------------------------------------------- sm_80+ (mma.sync path, small-M path)

// D(16x8 s32) += A(16x32 s8, row) * B(32x8 s8, col). a: 4 regs, b: 2 regs, d: 4 regs (PTX fragment layouts).
// Volatile: keeps source order against the volatile loads above.
__device__ __forceinline__ void mma_s8_16832(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 b16 matrices (= 8 rows x 16 bytes each) from shared memory; lane l gives the row address of matrix l/8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

using qtorch_ptx::cp_async_16;
using qtorch_ptx::cp_async_commit;
using qtorch_ptx::cp_async_wait;

using qtorch_ptx::ld_readonly_16;
using qtorch_ptx::ld_stream_16;

// Sum of the four signed bytes of v (exact, int32).
__device__ __forceinline__ int32_t byte_sum(uint32_t v, int32_t acc) { return __dp4a(static_cast<int>(v), 0x01010101, acc); }

// ---------------------------------------------------------------- sm_90a (wgmma + TMA path)
#if defined(QTORCH_SM90_ENABLED)

using qtorch_ptx::mbar_arrive;
using qtorch_ptx::mbar_arrive_expect_tx;
using qtorch_ptx::mbar_init;
using qtorch_ptx::mbar_wait;

using qtorch_ptx::tma_load_2d;
using qtorch_ptx::tma_prefetch_desc;

using qtorch_ptx::fence_proxy_async_smem;
using qtorch_ptx::fence_regs;
using qtorch_ptx::wgmma_commit;
using qtorch_ptx::wgmma_fence;
using qtorch_ptx::wgmma_wait;

using qtorch_ptx::named_barrier_sync;
using qtorch_ptx::setmaxnreg_dec;
using qtorch_ptx::setmaxnreg_inc;
using qtorch_ptx::cluster_ctarank;
using qtorch_ptx::cluster_sync;
using qtorch_ptx::ld_cluster_16;
using qtorch_ptx::map_cluster_rank;
using qtorch_ptx::smem_desc_sw128;

#endif  // QTORCH_SM90_ENABLED

}  // namespace qtorch_int8
