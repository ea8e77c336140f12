"""A few calls of the mixed-input GEMM kernels, for compute-sanitizer (memcheck, racecheck) and ncu profiles:
int4 g128 and int8 per channel, bf16, M in --ms, on one (K, N) shape; checks each result against float64.

    compute-sanitizer --tool memcheck python3 benchmarks/tools/mixed_gemm_calls.py --ms 1,17,100 --k 512 --n 200
    ncu --clock-control none -k regex:mixed_gemm python3 benchmarks/tools/mixed_gemm_calls.py --ms 1,16 --k 4096 --n 11008
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_mixed_gemm import quantize  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ms", default="1,17,100")
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    import qtorch.ops  # noqa: F401
    from qtorch.ops.group import group_dequantize_reference

    w = torch.randn(args.n, args.k, device="cuda").to(torch.bfloat16) * 0.02
    for bits in (4, 8):
        tiled, scale, zp, packed, g = quantize(w, bits)
        w_hat = group_dequantize_reference(packed, scale, zp, bits, g, torch.float64)
        deq = torch.ops.qtorch._dequant_tiled_cuda(tiled, scale, zp, bits, g, args.k, torch.bfloat16)
        for m in (int(v) for v in args.ms.split(",")):
            x = torch.randn(m, args.k, device="cuda").to(torch.bfloat16)
            y = torch.ops.qtorch._mixed_gemm_cuda(x, tiled, scale, zp, bits, g, None, 1 << 30)
            ref = x.double() @ w_hat.t()
            err = float((y.double() - ref).norm() / ref.norm())
            print(f"bits={bits} M={m}: rel err {err:.2e}, dequant max diff "
                  f"{float((deq.double() - w_hat).abs().max()):.2e}")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
