"""Profile one call of each Triton kernel under Nsight Compute after autotuning (ncu --profile-from-start off).

    ncu --profile-from-start off --section SpeedOfLight ... python benchmarks/tools/profile_kernels.py [CASE...]
Cases: gemv_m1 (W4A16 g128 4096 -> 11008, M = 1), wo_m16 (same layer, M = 16), act_2048 (quantize_per_token of
2048 x 4096 bf16). The autotuners' chosen configurations are printed.
"""
import sys

import torch

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])

import qtorch.ops as qops  # noqa: E402
from triton_kernels import act_quant, weight_only_gemv, weight_only_mma  # noqa: E402


def _layer(k=4096, n=11008, bits=4, group_size=128):
    w = torch.randn(n, k, device="cuda").to(torch.bfloat16) * 0.02  # (N, K) bf16
    return qops.group_quantize(w, bits, group_size, False)


def case_gemv_m1():
    q = _layer()
    x = torch.randn(1, 4096, device="cuda").to(torch.bfloat16)  # (1, K)
    return lambda: qops.weight_only_linear(x, *q, 4, 128, None)


def case_wo_m16():
    q = _layer()
    x = torch.randn(16, 4096, device="cuda").to(torch.bfloat16)  # (16, K)
    return lambda: qops.weight_only_linear(x, *q, 4, 128, None)


def case_act_2048():
    x = torch.randn(2048, 4096, device="cuda").to(torch.bfloat16)  # (M, K)
    return lambda: qops.quantize_per_token(x)


def main():
    names = sys.argv[1:] or ["gemv_m1", "wo_m16", "act_2048"]
    calls = [globals()[f"case_{n}"]() for n in names]
    for c in calls:  # autotune outside the profiled range
        c(), c()
    torch.cuda.synchronize()
    for mod in (weight_only_gemv, weight_only_mma, act_quant):
        for name, obj in vars(mod).items():
            for tuner in obj.values() if isinstance(obj, dict) else [obj]:
                for key, config in getattr(tuner, "cache", {}).items():
                    print(f"{mod.__name__}.{name}: {key} -> {config}")
    torch.cuda.cudart().cudaProfilerStart()
    for c in calls:
        c()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == "__main__":
    main()
