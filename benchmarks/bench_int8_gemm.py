"""Benchmark of the int8 GEMM (issue 4), side by side in one run, CUDA-graph replay medians.

Records (benchmarks/results/<gpu>.json, format of /work/shared/BENCHMARK_RESULTS.md):
  int8_gemm    raw GEMM, x already int8: qtorch (qtorch::int8_scaled_mm, bf16 out, fused scale epilogue),
               torch_int_mm (torch._int_mm, int32 out, M > 16 only), bf16 (F.linear); LLaMA-2-7B shapes + 4096^3, 8192^3
  w8a8_linear  a bf16 Linear end to end: qtorch (QuantLinear W8A8 dynamic = quantize_per_token + int8_scaled_mm),
               torchao_int8dyn (torchao Int8DynamicActivationInt8WeightConfig, torch.compile per shape, when
               importable), bf16 (F.linear with bias)
Every timed call reads one of R copies of the weights (R copies > 3x L2), so weights come from HBM as in a model.
Usage: python benchmarks/bench_int8_gemm.py [--quick] [--no-torchao] [--out PATH]
"""
import argparse
import math
import pathlib

import torch
import torch.nn.functional as F
from records import merge_records, results_path, run_meta

ROOT = pathlib.Path(__file__).resolve().parents[1]
LLAMA_KN = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N) of the LLaMA-2-7B linears
LLAMA_M = [1, 16, 32, 128, 512, 2048, 8192]
SQUARE = [4096, 8192]


def graph_time_us(calls, min_replay_ms=2.0, replays=25):
    """Median time (us) of one call: a CUDA graph replays a batch of calls cycling over `calls` (one per weight copy)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for c in calls:  # warm-up outside the capture (compilation, autotuning, lazy init)
            c()
            c()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for c in calls:
        c()
    end.record()
    torch.cuda.synchronize()
    est_us = max(start.elapsed_time(end) * 1000 / len(calls), 1.0)
    batch = max(len(calls), min(200, math.ceil(min_replay_ms * 1000 / est_us)))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(batch):
            calls[i % len(calls)]()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000 / batch)
    times.sort()
    del graph
    return times[len(times) // 2]


def copies_for(bytes_per_copy):
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)
    return int(min(16, max(2, math.ceil(3 * l2 / bytes_per_copy))))


def load_torchao():
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception as exc:  # not installed, or incompatible with this torch
        print(f"torchao not available ({type(exc).__name__}: {exc}); skipping torchao_int8dyn")
        return None
    return quantize_, Int8DynamicActivationInt8WeightConfig


def bench_shape(M, N, K, *, e2e, torchao, ops, QuantLinear, W8A8DynamicConfig):
    """Times every implementation on one (M, N, K); returns {(benchmark, impl): us or an error string}."""
    dev = "cuda"
    R = copies_for(N * K * 2)
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    lins = []
    for _ in range(R):
        lin = torch.nn.Linear(K, N, bias=True, device=dev, dtype=torch.bfloat16)
        lins.append(lin)
    res = {}
    with torch.no_grad():
        # raw GEMM
        res[("int8_gemm", "bf16")] = graph_time_us([lambda l=l: F.linear(x, l.weight) for l in lins])
        x_q, x_scale, x_zp = ops.quantize_per_token(x)
        qlins = [QuantLinear.from_float(l, W8A8DynamicConfig()) for l in lins]
        raw_calls = [lambda q=q: ops.int8_scaled_mm(x_q, x_scale, x_zp, q.w_q, q.w_scale, q.w_colsum, None, None,
                                                    torch.bfloat16) for q in qlins]
        res[("int8_gemm", "qtorch")] = graph_time_us(raw_calls)
        if M > 16:
            res[("int8_gemm", "torch_int_mm")] = graph_time_us([lambda q=q: torch._int_mm(x_q, q.w_q.t()) for q in qlins])
        else:
            res[("int8_gemm", "torch_int_mm")] = "refuses M <= 16"
        if e2e:
            res[("w8a8_linear", "bf16")] = graph_time_us([lambda l=l: F.linear(x, l.weight, l.bias) for l in lins])
            res[("w8a8_linear", "qtorch")] = graph_time_us([lambda q=q: q(x) for q in qlins])
            if torchao is not None:
                us, copies = bench_torchao(x, lins, torchao)
                res[("w8a8_linear", "torchao_int8dyn")] = us
                if copies:
                    res[("w8a8_linear", "torchao_int8dyn", "copies")] = copies
        del qlins
    res["copies"] = R
    return res


def bench_torchao(x, lins, torchao):
    """torchao int8 dynamic-activation linear, compiled for this shape: one compiled F.linear over the R quantized
    weight copies; if that does not trace, a compiled module of one copy (weights may then sit in L2)."""
    quantize_, config_cls = torchao
    mods = []
    for lin in lins:
        m = torch.nn.Sequential(torch.nn.Linear(lin.in_features, lin.out_features, bias=True, device="cuda",
                                                dtype=torch.bfloat16))
        m[0].weight.copy_(lin.weight)
        m[0].bias.copy_(lin.bias)
        quantize_(m, config_cls())
        mods.append(m)
    errors = []
    torch._dynamo.reset()
    try:
        fn = torch.compile(lambda inp, w, b: F.linear(inp, w, b), dynamic=False)
        return graph_time_us([lambda m=m: fn(x, m[0].weight, m[0].bias) for m in mods]), len(mods)
    except Exception as exc:  # e.g. torch._int_mm refusing M <= 16 inside the compiled graph
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}")
    if x.shape[0] > 16:
        torch._dynamo.reset()
        try:
            mod = torch.compile(mods[0], dynamic=False)
            return graph_time_us([lambda: mod(x)]), 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}")
    return "fails: " + " | ".join(errors), 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="M in {1, 128, 2048} on the 4096x4096 layer only")
    parser.add_argument("--no-torchao", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results JSON (default results/<gpu>.json)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_int8_gemm.py needs a CUDA GPU")

    import qtorch
    import qtorch.ops as ops
    from qtorch.config import W8A8DynamicConfig
    from qtorch.nn import QuantLinear

    if not qtorch.cuda_kernels_available():
        from qtorch._ext import extension_error
        raise SystemExit(f"qtorch._C is not loaded ({extension_error()}); build with pip install -e . first")
    torch._dynamo.config.cache_size_limit = 64
    torchao = None if args.no_torchao else load_torchao()

    shapes = [(M, N, K, True) for (K, N) in LLAMA_KN for M in LLAMA_M]
    shapes += [(s, s, s, False) for s in SQUARE]
    if args.quick:
        shapes = [(M, 4096, 4096, True) for M in (1, 128, 2048)] + [(8192, 8192, 8192, False)]

    meta = run_meta()
    records, rows = [], []
    for M, N, K, e2e in shapes:
        res = bench_shape(M, N, K, e2e=e2e, torchao=torchao, ops=ops, QuantLinear=QuantLinear,
                          W8A8DynamicConfig=W8A8DynamicConfig)
        row = {"shape": (M, N, K)}
        copies = res.pop("copies")
        ao_copies = res.pop(("w8a8_linear", "torchao_int8dyn", "copies"), copies)
        for (bench, impl), v in res.items():
            row[(bench, impl)] = v
            if isinstance(v, str):
                print(f"  M={M} N={N} K={K} {bench}/{impl}: {v}")
                continue
            base = res.get((bench, "bf16"))
            metrics = {"tops": round(2 * M * N * K / v / 1e6, 1)}
            if isinstance(base, float):
                metrics["speedup_vs_bf16"] = round(base / v, 3)
            weight_copies = ao_copies if impl == "torchao_int8dyn" else copies
            records.append({"benchmark": bench, "impl": impl,
                            "params": {"M": M, "N": N, "K": K, "dtype": "bfloat16", "weight_copies": weight_copies},
                            "median_us": round(v, 2), "metrics": metrics, **meta})
            print(f"  M={M:<5} N={N:<6} K={K:<6} {bench:12s} {impl:16s} {v:10.2f} us  {metrics}", flush=True)
        rows.append(row)

    out = merge_records(args.out or results_path(), records, benchmarks=("int8_gemm", "w8a8_linear"))
    print(f"wrote {len(records)} records to {out}")

    def cell(row, key, base_key):
        v, b = row.get(key), row.get(base_key)
        if v is None:
            return "-"
        if isinstance(v, str):
            return "n/a"
        return f"{v:8.1f} ({b / v:4.2f}x)" if isinstance(b, float) else f"{v:8.1f}"

    print("\n== summary: median us per call (speedup vs bf16 F.linear of the same benchmark)")
    print(f"{'M':>5} {'N':>6} {'K':>6} | {'bf16':>8} {'int_mm':>16} {'qtorch gemm':>16} | {'bf16+b':>8} "
          f"{'qtorch W8A8':>16} {'torchao':>16}")
    for row in rows:
        M, N, K = row["shape"]
        g, e = ("int8_gemm", "bf16"), ("w8a8_linear", "bf16")
        print(f"{M:>5} {N:>6} {K:>6} | {row[g]:8.1f} {cell(row, ('int8_gemm', 'torch_int_mm'), g):>16} "
              f"{cell(row, ('int8_gemm', 'qtorch'), g):>16} | "
              f"{(row[e] if e in row else float('nan')):8.1f} {cell(row, ('w8a8_linear', 'qtorch'), e):>16} "
              f"{cell(row, ('w8a8_linear', 'torchao_int8dyn'), e):>16}")
    for s in SQUARE:
        for row in rows:
            if row["shape"] == (s, s, s):
                v = row[("int8_gemm", "qtorch")]
                print(f"raw GEMM {s}^3: qtorch {2 * s ** 3 / v / 1e6:.0f} TOP/s, "
                      f"torch._int_mm {2 * s ** 3 / row[('int8_gemm', 'torch_int_mm')] / 1e6:.0f} TOP/s, "
                      f"bf16 {2 * s ** 3 / row[('int8_gemm', 'bf16')] / 1e6:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
