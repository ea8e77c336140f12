"""Eager (no torch.compile, no CUDA graph) per-call time of every QuantLinear scheme next to nn.Linear on the same
shape, and eager decode tokens/s of a LLaMA-2-7B-shaped model per scheme next to bf16.

Per call (benchmark "eager_linear"): M = 1, (K, N) in SHAPES, one layer quantized by each scheme of
qtorch.eval.schemes (w8a8, w8a8-static, w8a16, w4a16, codebook4); `calls` back-to-back calls timed by the wall clock
(synchronised once at the end on CUDA), the median of `repeats` such loops. At M = 1 the GPU work is a few µs, so on
CUDA this is the host's time per call: Python, dispatch and launches (issue 13: ≤ 2× nn.Linear's, ≈ 45 µs on the
H200). CPU: float32, one thread (the time includes the CPU reference kernels' arithmetic); CUDA: bfloat16.
Decode (benchmark "model_decode_eager", CUDA only): one step of (B, 1) tokens at position 128 of a 256-position static
KV cache with `layers` blocks, wall clock per step (median of repeats of back-to-back steps), projected to the
preset's depth as qtorch.eval.speed.project_depth does (the block-less forward timed the same way).

    python benchmarks/bench_eager_overhead.py [--device cpu|cuda] [--shapes 4096x4096,256x256] [--decode]
                                              [--layers 4] [--out DIR]    # records into DIR/<gpu>.json
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from records import merge_records, results_path, run_meta  # noqa: E402

SCHEMES = ("w8a8", "w8a8-static", "w8a16", "w4a16", "codebook4")
SHAPES = ((4096, 4096), (256, 256))  # (K, N)
DECODE_BATCHES = (1, 16)


def wall_us(fn, device: torch.device, calls: int, repeats: int = 7, warmup: int = 20) -> float:
    """Median over `repeats` of the mean wall-clock time of `calls` back-to-back calls (synchronised per loop)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(samples)


def calibration(batches):
    from qtorch.eval.schemes import Calibration

    return Calibration(batches=batches, plan_inputs=batches[0], progress=False)


def quantized_layer(linear: nn.Linear, scheme: str, x: torch.Tensor) -> nn.Module:
    """A copy of `linear` quantized by `scheme` (w8a8-static calibrated on random inputs like x)."""
    import copy

    from qtorch.eval.schemes import get_scheme

    model = nn.Sequential(copy.deepcopy(linear))
    get_scheme(scheme).apply(model, calibration([torch.randn(16, x.shape[1], dtype=x.dtype, device=x.device)]))
    return model[0]


@torch.no_grad()
def bench_linear(device: torch.device, shapes, calls: int) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    meta, records = run_meta(device), []
    for k, n in shapes:
        linear = nn.Linear(k, n, device=device, dtype=dtype)
        x = torch.randn(1, k, device=device, dtype=dtype)  # (1, K)
        params = {"M": 1, "N": n, "K": k, "dtype": str(dtype).replace("torch.", ""), "device": device.type}
        base = wall_us(lambda: linear(x), device, calls)
        impl = "bf16" if dtype == torch.bfloat16 else "fp32"
        records.append({"benchmark": "eager_linear", "impl": impl, "params": params, "median_us": round(base, 2),
                        "metrics": {"ratio_to_linear": 1.0}, **meta})
        print(f"{k}x{n} {impl} nn.Linear: {base:.1f} us/call")
        for scheme in SCHEMES:
            layer = quantized_layer(linear, scheme, x)
            us = wall_us(lambda: layer(x), device, calls)
            records.append({"benchmark": "eager_linear", "impl": f"qtorch_{scheme}", "params": params,
                            "median_us": round(us, 2), "metrics": {"ratio_to_linear": round(us / base, 3)}, **meta})
            print(f"{k}x{n} qtorch_{scheme}: {us:.1f} us/call ({us / base:.2f}x nn.Linear)")
            del layer
    return records


@torch.no_grad()
def bench_decode(device: torch.device, preset: str, layers: int, steps: int) -> list[dict]:
    from qtorch.eval.speed import build_model, drop_kv_cache, project_depth, without_blocks
    from qtorch.eval.schemes import get_scheme
    from qtorch.models.llama import get_config

    full_depth, meta, records, base = get_config(preset).n_layers, run_meta(device), [], {}
    for impl in ("bf16",) + SCHEMES:
        model = build_model(preset, layers, device)
        if impl != "bf16":
            tokens = torch.randint(0, model.config.vocab_size, (2, 16), device=device)
            get_scheme(impl).apply(model, calibration([tokens]))
        for batch in DECODE_BATCHES:
            model.setup_caches(batch, 256, dtype=torch.bfloat16, device=device)
            step = torch.randint(0, model.config.vocab_size, (batch, 1), device=device)  # (B, 1)
            pos = torch.tensor([128], device=device)  # (1,)
            slice_us = wall_us(lambda: model(step, pos), device, steps, repeats=5)
            with without_blocks(model):
                fixed_us = wall_us(lambda: model(step, pos), device, steps, repeats=5)
            full_us = project_depth(slice_us, fixed_us, layers, full_depth)
            name = impl if impl == "bf16" else f"qtorch_{impl}"
            base.setdefault(batch, full_us)
            metrics = {"tokens_per_s": round(batch / (full_us * 1e-6), 1),
                       "speedup_vs_bf16": round(base[batch] / full_us, 3), "slice_us": round(slice_us, 1),
                       "fixed_us": round(fixed_us, 1)}
            records.append({"benchmark": "model_decode_eager", "impl": name,
                            "params": {"model": preset, "layers": layers, "projected_layers": full_depth,
                                       "batch": batch, "decode_pos": 128, "cache": 256, "dtype": "bfloat16"},
                            "median_us": round(full_us, 1), "metrics": metrics, **meta})
            print(f"decode b{batch} {name}: {metrics['tokens_per_s']:.1f} tok/s ({metrics['speedup_vs_bf16']:.2f}x "
                  f"bf16; slice {slice_us:.0f} us, block-less {fixed_us:.0f} us)")
            drop_kv_cache(model)
        del model
        torch.cuda.empty_cache()
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--shapes", default=",".join(f"{k}x{n}" for k, n in SHAPES), help="KxN,KxN,...")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--decode", action="store_true", help="also the eager 7B-shaped decode (CUDA)")
    parser.add_argument("--preset", default="llama2-7b-shaped")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=None, help="directory of the records (default: benchmarks/results)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    records = bench_linear(device, shapes, args.calls)
    if args.decode:
        records += bench_decode(device, args.preset, args.layers, args.steps)
    path = merge_records(results_path(device, args.out), records, by_param="K")  # runs per shape keep the others
    print(f"records: {path}")


if __name__ == "__main__":
    main()
