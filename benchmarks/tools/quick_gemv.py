"""Spot check of the weight-only kernel the op picks at M = 1 on the three LLaMA-2-7B shapes (CUDA-graph medians
via triton.testing.do_bench_cudagraph, 6 weight copies per graph so weights stream from HBM), with the autotuner's
choice and the split. Prints one line per shape.

    python benchmarks/tools/quick_gemv.py
"""
import sys

import torch
import torch.nn.functional as F
import triton

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])

import qtorch.ops as qops  # noqa: E402
from triton_kernels import weight_only_gemv  # noqa: E402

COPIES = 6


def main():
    for k, n in ((4096, 4096), (4096, 11008), (11008, 4096)):
        ws = [torch.randn(n, k, device="cuda").to(torch.bfloat16) * 0.02 for _ in range(COPIES)]  # (N, K) bf16
        qs = [qops.group_quantize(w, 4, 128, False) for w in ws]
        x = torch.randn(1, k, device="cuda").to(torch.bfloat16)  # (1, K)
        bf16 = triton.testing.do_bench_cudagraph(lambda: [F.linear(x, w) for w in ws]) * 1e3 / COPIES
        w4 = triton.testing.do_bench_cudagraph(
            lambda: [qops.weight_only_linear(x, *q, 4, 128, None) for q in qs]) * 1e3 / COPIES
        chosen = list(weight_only_gemv._wo_gemv_tuned.cache.items())[-1][1]
        split = weight_only_gemv.gemv_split_k(n, k // 8)
        print(f"K={k} N={n} M=1: bf16 {bf16:.1f} us, w4a16 g128 {w4:.1f} us ({bf16 / w4:.2f}x), "
              f"split {split}, config {chosen}", flush=True)


if __name__ == "__main__":
    main()
