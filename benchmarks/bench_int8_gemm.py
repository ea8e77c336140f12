"""Benchmark of the int8 GEMM (issue 4), side by side in one run, CUDA-graph replay medians.

Records (benchmarks/results/<gpu>.json, format of /work/shared/BENCHMARK_RESULTS.md):
  int8_gemm    raw GEMM, x already int8: qtorch (qtorch::int8_scaled_mm, bf16 out, fused scale epilogue),
               torch_int_mm (torch._int_mm, int32 out, M > 16 only), fp8_rowwise (torch._scaled_mm, x already e4m3,
               row-wise scales, bf16 out), bf16 (F.linear); LLaMA-2-7B shapes + 4096^3, 8192^3
  w8a8_linear  a bf16 Linear end to end: qtorch (QuantLinear W8A8 dynamic = quantize_per_token + int8_scaled_mm),
               qtorch_static (W8A8 static, float output: per-tensor S_X, Z_X read by the epilogue as one value),
               fp8_rowwise (per-token e4m3 cast compiled by Inductor + torch._scaled_mm row-wise, qtorch_baselines.fp8),
               torchao_int8dyn / torchao_fp8_rowwise (torchao Int8DynamicActivationInt8WeightConfig /
               Float8DynamicActivationFloat8WeightConfig(PerRow), torch.compile per shape, when importable),
               bf16 (F.linear with bias)
Every timed call reads one of R copies of the weights (R copies > 3x L2), so weights come from HBM as in a model.
Usage: python benchmarks/bench_int8_gemm.py [--quick] [--no-torchao] [--kn KxN,...] [--out PATH]
       (--kn 4096x4096,8192x8192 runs only those (K, N), the squares included, and replaces only their records: a
       full run compiles three implementations per shape, so it may be split over calls)
       python benchmarks/bench_int8_gemm.py --sweep-plans     (tooling, no records: see sweep_plans)
"""
import argparse
import json
import math
import pathlib
import sys

import torch
import torch.nn.functional as F
from records import merge_records, results_path, run_meta

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # qtorch_baselines (and qtorch) from this checkout
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
    from qtorch_baselines import torchao

    if not torchao.available():
        print("torchao not available; skipping torchao_int8dyn and torchao_fp8_rowwise")
        return None
    return torchao


def _error(exc) -> str:
    return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"


def bench_fp8(x, lins, res, e2e):
    """FP8 row-wise through torch._scaled_mm: the raw GEMM on an already-cast x, and end to end with the per-token
    cast compiled (qtorch_baselines.fp8)."""
    from qtorch.quant.fp8 import quantize_e4m3_rowwise
    from qtorch_baselines.fp8 import fp8_rowwise_linear

    weights = [(q, s.reshape(1, -1).contiguous()) for q, s in (quantize_e4m3_rowwise(l.weight) for l in lins)]
    x8, sx = quantize_e4m3_rowwise(x)  # (M, K) e4m3, (M, 1) fp32
    try:
        res[("int8_gemm", "fp8_rowwise")] = graph_time_us(
            [lambda w=w, s=s: torch._scaled_mm(x8, w.t(), scale_a=sx, scale_b=s, out_dtype=torch.bfloat16)
             for w, s in weights])
    except Exception as exc:
        res[("int8_gemm", "fp8_rowwise")] = _error(exc)
    if not e2e:
        return
    torch._dynamo.reset()
    fn = torch.compile(fp8_rowwise_linear, dynamic=False)
    try:
        res[("w8a8_linear", "fp8_rowwise")] = graph_time_us(
            [lambda w=w, s=s, l=l: fn(x, w, s, l.bias) for (w, s), l in zip(weights, lins)])
    except Exception as exc:
        res[("w8a8_linear", "fp8_rowwise")] = _error(exc)


def static_layers(lins, QuantLinear, W8A8StaticConfig):
    """W8A8 static (float output) copies of lins, calibrated with one fixed (S_X, Z_X) (timing only)."""
    layers = []
    for lin in lins:
        q = QuantLinear.from_float(lin, W8A8StaticConfig())
        q.set_activation_qparams(torch.tensor([0.03]), torch.tensor([2], dtype=torch.int32))
        layers.append(q)
    return layers


def bench_shape(M, N, K, *, e2e, torchao, ops, QuantLinear, W8A8DynamicConfig, W8A8StaticConfig):
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
            slins = static_layers(lins, QuantLinear, W8A8StaticConfig)
            res[("w8a8_linear", "qtorch_static")] = graph_time_us([lambda q=q: q(x) for q in slins])
            del slins
            if torchao is not None:
                for impl, scheme in (("torchao_int8dyn", "w8a8"), ("torchao_fp8_rowwise", "fp8")):
                    us, copies = bench_torchao(x, lins, torchao.quantizer(scheme))
                    res[("w8a8_linear", impl)] = us
                    if copies:
                        res[("w8a8_linear", impl, "copies")] = copies
        del qlins
        bench_fp8(x, lins, res, e2e)
    res["copies"] = R
    return res


def bench_torchao(x, lins, quantize):
    """A torchao config's linear (quantize(module) in place), compiled for this shape: one compiled F.linear over the
    R quantized weight copies; if that does not trace, a compiled module of one copy (weights may then sit in L2)."""
    mods = []
    for lin in lins:
        m = torch.nn.Sequential(torch.nn.Linear(lin.in_features, lin.out_features, bias=True, device="cuda",
                                                dtype=torch.bfloat16))
        m[0].weight.copy_(lin.weight)
        m[0].bias.copy_(lin.bias)
        quantize(m)
        mods.append(m)
    errors = []
    torch._dynamo.reset()
    try:
        fn = torch.compile(lambda inp, w, b: F.linear(inp, w, b), dynamic=False)
        return graph_time_us([lambda m=m: fn(x, m[0].weight, m[0].bias) for m in mods]), len(mods)
    except Exception as exc:  # e.g. torch._int_mm refusing M <= 16 inside the compiled graph
        errors.append(_error(exc)[len("fails: "):])
    if x.shape[0] > 16:
        torch._dynamo.reset()
        try:
            mod = torch.compile(mods[0], dynamic=False)
            return graph_time_us([lambda: mod(x)]), 1
        except Exception as exc:
            errors.append(_error(exc)[len("fails: "):])
    return "fails: " + " | ".join(errors), 0


# --- tile sweep (tooling for the plan table, csrc/int8_gemm/plan.cpp) -------------------------------------------------
SWEEP_M = (32, 64, 128, 256, 512)
ACT_QUANT_M = (1, 16, 64, 256)
SM90_COOPERATIVE = ("sm90_128x256", "sm90_128x128", "sm90_64x256", "sm90_64x128")  # split-K through a cluster of split_k CTAs
SM90_PINGPONG = ("sm90pp_128x128", "sm90pp_64x256")  # persistent only
GEMV_MAX_M = 32  # kGemvMaxM (csrc/int8_gemm/int8_gemm.h)


def plan_options(M, K, cc_major, cc_minor):
    """Every (kernel, split_k) the int8 GEMM runs for M rows and K on a device (kernel_supported in plan.cpp): split-K
    2, 4, 8 where every CTA keeps >= 2 k-blocks of 128 (the harness's configs_for)."""
    sm90, k_blocks = (cc_major, cc_minor) == (9, 0), -(-K // 128)
    out = []
    if sm90:
        for kernel in SM90_COOPERATIVE:
            out += [(kernel, s) for s in (1, 2, 4, 8) if s == 1 or k_blocks >= 2 * s]
        out += [(kernel, 1) for kernel in SM90_PINGPONG]
    if sm90 or cc_major == 8:
        out.append(("sm80_128x128", 1))
        if M <= GEMV_MAX_M:
            out += [("gemv16", 1), ("gemv32", 1)]
    return out


def sweep_plans(ops):
    """Every plan_options entry forced (qtorch._C._int8_force_plan) on the raw GEMM (bf16 out, no bias, cold weights)
    for M in SWEEP_M on the three LLaMA shapes, beside bf16 F.linear and the plan table's own choice; then
    quantize_per_token alone at M in ACT_QUANT_M beside a 1-element kernel (the floor of one launch in a graph) and a
    bf16 copy of the same tensor. Prints tables only (no records)."""
    import qtorch._C as ext

    props = torch.cuda.get_device_properties(0)
    cc, sms = (props.major, props.minor), props.multi_processor_count
    summary = []
    for K, N in LLAMA_KN:
        w_q = [torch.randint(-128, 128, (N, K), dtype=torch.int8, device="cuda") for _ in range(copies_for(N * K))]
        w_colsum = [w.sum(dim=1, dtype=torch.int32) for w in w_q]  # (N,) int32
        w_scale = torch.rand(N, device="cuda") * 0.01 + 1e-3
        w_bf16 = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) for _ in range(copies_for(N * K * 2))]
        for M in SWEEP_M:
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            x_q, x_scale, x_zp = ops.quantize_per_token(x)
            calls = [lambda w=w, c=c: ops.int8_scaled_mm(x_q, x_scale, x_zp, w, w_scale, c, None, None,
                                                         torch.bfloat16) for w, c in zip(w_q, w_colsum)]
            bf16 = graph_time_us([lambda w=w: F.linear(x, w) for w in w_bf16])
            table = ext._int8_plan(M, N, K, *cc, sms)
            times = {}
            for kernel, split_k in plan_options(M, K, *cc):
                ext._int8_force_plan(kernel, split_k)
                try:
                    times[f"{kernel}/{split_k}"] = graph_time_us(calls)
                except RuntimeError as exc:
                    times[f"{kernel}/{split_k}"] = _error(exc)
                finally:
                    ext._int8_force_plan("", 1)
            times[f"table:{table}"] = graph_time_us(calls)
            timed = sorted((v, k) for k, v in times.items() if isinstance(v, float))
            print(f"-- K={K} N={N} M={M}: bf16 {bf16:.1f} us; plan table picks {table}", flush=True)
            for v, k in timed:
                print(f"   {k:24s} {v:9.2f} us  {bf16 / v:5.2f}x bf16")
            for k, v in times.items():
                if isinstance(v, str):
                    print(f"   {k:24s} {v}")
            summary.append((K, N, M, bf16, table, times[f"table:{table}"], timed[0][1], timed[0][0]))
        del w_q, w_colsum, w_bf16
        torch.cuda.empty_cache()
    print("\n== plan sweep summary (raw int8 GEMM, bf16 out, cold weights; x: speedup vs bf16 F.linear)")
    print(f"{'K':>6} {'N':>6} {'M':>4} | {'bf16 us':>8} | {'table plan':>20} {'us':>8} {'x':>5} | "
          f"{'best plan':>24} {'us':>8} {'x':>5} | best/table")
    for K, N, M, bf16, table, table_us, best, best_us in summary:
        print(f"{K:>6} {N:>6} {M:>4} | {bf16:8.1f} | {table:>20} {table_us:8.2f} {bf16 / table_us:5.2f} | "
              f"{best:>24} {best_us:8.2f} {bf16 / best_us:5.2f} | {table_us / best_us:5.2f}x")

    print("\n== quantize_per_token alone (CUDA-graph medians): launch overhead at small M")
    print(f"{'K':>6} {'M':>4} | {'act quant us':>12} {'GB/s':>7} | {'bf16 copy us':>12} | {'1-elem kernel us':>16}")
    one = torch.zeros(1, device="cuda")
    floor = graph_time_us([lambda: one.add_(1)])
    for K in (4096, 11008):
        for M in ACT_QUANT_M:
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            quant = graph_time_us([lambda: ops.quantize_per_token(x)])
            copy = graph_time_us([lambda: x.clone()])
            moved = M * K * 3 + M * 8  # bf16 in, int8 out, (scale, zero point) per row
            print(f"{K:>6} {M:>4} | {quant:12.2f} {moved / quant / 1e3:7.1f} | {copy:12.2f} | {floor:16.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="M in {1, 128, 2048} on the 4096x4096 layer only")
    parser.add_argument("--no-torchao", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results JSON (default results/<gpu>.json)")
    parser.add_argument("--kn", default=None, help="only these (K, N), e.g. 4096x4096,11008x4096 (records of the "
                                                    "other shapes are kept)")
    parser.add_argument("--sweep-plans", action="store_true",
                        help="time every int8 GEMM tile / split-K option at M = 32..512 on the LLaMA shapes and "
                             "quantize_per_token at small M (sweep_plans); no records")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_int8_gemm.py needs a CUDA GPU")

    import qtorch
    import qtorch.ops as ops
    from qtorch.config import W8A8DynamicConfig, W8A8StaticConfig
    from qtorch.nn import QuantLinear

    if not qtorch.cuda_kernels_available():
        from qtorch._ext import extension_error
        raise SystemExit(f"qtorch._C is not loaded ({extension_error()}); build with pip install -e . first")
    if args.sweep_plans:
        sweep_plans(ops)
        return
    torch._dynamo.config.cache_size_limit = 64
    torchao = None if args.no_torchao else load_torchao()

    shapes = [(M, N, K, True) for (K, N) in LLAMA_KN for M in LLAMA_M]
    shapes += [(s, s, s, False) for s in SQUARE]
    if args.quick:
        shapes = [(M, 4096, 4096, True) for M in (1, 128, 2048)] + [(8192, 8192, 8192, False)]
    only = None if args.kn is None else {tuple(int(v) for v in kn.split("x")) for kn in args.kn.split(",")}
    if only is not None:
        shapes = [s for s in shapes if (s[2], s[1]) in only]

    meta = run_meta()
    records, rows = [], []
    for M, N, K, e2e in shapes:
        res = bench_shape(M, N, K, e2e=e2e, torchao=torchao, ops=ops, QuantLinear=QuantLinear,
                          W8A8DynamicConfig=W8A8DynamicConfig, W8A8StaticConfig=W8A8StaticConfig)
        row = {"shape": (M, N, K)}
        copies = res.pop("copies")
        ao_copies = {impl: res.pop(("w8a8_linear", impl, "copies"), copies)
                     for impl in ("torchao_int8dyn", "torchao_fp8_rowwise")}
        for (bench, impl), v in res.items():
            row[(bench, impl)] = v
            if isinstance(v, str):
                print(f"  M={M} N={N} K={K} {bench}/{impl}: {v}")
                continue
            base = res.get((bench, "bf16"))
            metrics = {"tops": round(2 * M * N * K / v / 1e6, 1)}
            if isinstance(base, float):
                metrics["speedup_vs_bf16"] = round(base / v, 3)
            weight_copies = ao_copies.get(impl, copies)
            records.append({"benchmark": bench, "impl": impl,
                            "params": {"M": M, "N": N, "K": K, "dtype": "bfloat16", "weight_copies": weight_copies},
                            "median_us": round(v, 2), "metrics": metrics, **meta})
            print(f"  M={M:<5} N={N:<6} K={K:<6} {bench:12s} {impl:16s} {v:10.2f} us  {metrics}", flush=True)
        rows.append(row)

    path, benchmarks = args.out or results_path(), ("int8_gemm", "w8a8_linear")
    if only is not None:  # keep this benchmark's records of the shapes not run
        existing = json.loads(path.read_text())["records"] if path.exists() else []
        records = [r for r in existing if r.get("benchmark") in benchmarks
                   and (r["params"]["K"], r["params"]["N"]) not in only] + records
    out = merge_records(path, records, benchmarks=benchmarks)
    print(f"wrote {len(records)} records to {out}")

    def cell(row, key, base_key):
        v, b = row.get(key), row.get(base_key)
        if v is None:
            return "-"
        if isinstance(v, str):
            return "n/a"
        return f"{v:8.1f} ({b / v:4.2f}x)" if isinstance(b, float) else f"{v:8.1f}"

    g, e = ("int8_gemm", "bf16"), ("w8a8_linear", "bf16")
    columns = [("int_mm", "int8_gemm", "torch_int_mm"), ("qtorch gemm", "int8_gemm", "qtorch"),
               ("fp8 gemm", "int8_gemm", "fp8_rowwise"), ("|bf16+b", None, None),
               ("W8A8 dyn", "w8a8_linear", "qtorch"), ("W8A8 static", "w8a8_linear", "qtorch_static"),
               ("fp8 rowwise", "w8a8_linear", "fp8_rowwise"), ("torchao int8", "w8a8_linear", "torchao_int8dyn"),
               ("torchao fp8", "w8a8_linear", "torchao_fp8_rowwise")]
    print("\n== summary: median us per call (speedup vs bf16 F.linear of the same benchmark; W8A8 and FP8 end to "
          "end from a bf16 input)")
    print(f"{'M':>5} {'N':>6} {'K':>6} | {'bf16':>8} " + " ".join(f"{c[0]:>16}" for c in columns))
    for row in rows:
        M, N, K = row["shape"]
        cells = [f"{'|' + format(row.get(e, float('nan')), '.1f'):>16}" if bench is None
                 else f"{cell(row, (bench, impl), g if bench == 'int8_gemm' else e):>16}"
                 for _, bench, impl in columns]
        print(f"{M:>5} {N:>6} {K:>6} | {row[g]:8.1f} " + " ".join(cells))
    for s in SQUARE:
        for row in rows:
            if row["shape"] == (s, s, s):
                v = row[("int8_gemm", "qtorch")]
                print(f"raw GEMM {s}^3: qtorch {2 * s ** 3 / v / 1e6:.0f} TOP/s, "
                      f"torch._int_mm {2 * s ** 3 / row[('int8_gemm', 'torch_int_mm')] / 1e6:.0f} TOP/s, "
                      f"bf16 {2 * s ** 3 / row[('int8_gemm', 'bf16')] / 1e6:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
