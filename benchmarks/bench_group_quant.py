"""Triton kernels side by side, one run, CUDA-graph medians (records group_quant, weight_only_linear, act_quant).

- group_quant: 8192x8192 and 11008x4096 bf16, g = 128, to int4 and int8 (asymmetric): effective GB/s = bytes read +
  written / time, next to a device-to-device copy of the same bf16 tensor measured in the same run (target >= 80%).
- weight_only_linear: M in {1, 2, 4, 8, 16, 32, 64, 128} on the LLaMA-2-7B projections (K, N) in
  {(4096, 4096), (4096, 11008), (11008, 4096)}: qtorch W4A16 (g = 128, asymmetric) and W8A16 (per channel) next to
  bf16 F.linear and, when torchao is installed, torchao int4 tinygemm (Int4WeightOnlyConfig(group_size=128)) and
  int8 weight-only (Int8WeightOnlyConfig(), torch.compile'd per shape, at M in TORCHAO_INT8_M only: every new M
  recompiles); speedup = bf16 time / time.
- act_quant: per-token int8 of (M, K) bf16 activations, GB/s next to the copy.

Timing: each case is captured in a CUDA graph that calls it once per weight copy (enough copies to exceed twice the
L2, so weights stream from HBM as in a real decode step), replayed after warm-up (autotuning happens there); the
median replay time over REPLAYS, divided by the calls per graph, is the time of one call.

    python benchmarks/bench_group_quant.py            # CUDA: writes benchmarks/results/<gpu>.json, table last
    python benchmarks/bench_group_quant.py --smoke    # tiny shapes, any device (CPU: TRITON_INTERPRET=1), no file
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent.parent))  # run from a checkout without installing

from records import merge_records, results_path, run_meta  # noqa: E402

GROUP_SHAPES = [(8192, 8192), (11008, 4096)]  # (N, K) weights to quantize
WEIGHT_SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N) of the LLaMA-2-7B projections
MS = [1, 2, 4, 8, 16, 32, 64, 128]
TORCHAO_INT8_M = (1, 16)
ACT_SHAPES = [(1, 4096), (16, 11008), (128, 4096), (2048, 4096), (4096, 11008)]
REPLAYS = 50
STREAM_BYTES = 2 * 60 * 2**20  # working set per graph: > 2x the 50-60 MB L2 of an H100/H200


def graph_time_us(calls, smoke=False):
    """Median time of one call: `calls` is a list of zero-argument callables, all captured in one CUDA graph."""
    for _ in range(2):  # warm-up: autotuning, allocator, lazy init
        for c in calls:
            c()
    if smoke:
        t0 = time.perf_counter()
        for c in calls:
            c()
        return (time.perf_counter() - t0) / len(calls) * 1e6
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            for c in calls:
                c()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPLAYS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / len(calls))
    del graph
    return statistics.median(times)


def copies_for(nbytes, smoke):
    return 1 if smoke else max(1, -(-STREAM_BYTES // max(nbytes, 1)))


def bench_group_quant(device, smoke):
    import qtorch.ops as qops

    records = []
    for n, k in ([(64, 256)] if smoke else GROUP_SHAPES):
        w = torch.randn(n, k, device=device).to(torch.bfloat16) * 0.02
        dst = torch.empty_like(w)
        copy_us = graph_time_us([lambda: dst.copy_(w)], smoke)
        copy_gbps = 2 * w.numel() * 2 / copy_us / 1e3
        params = {"N": n, "K": k, "dtype": "bfloat16"}
        _add(records, {"benchmark": "group_quant", "impl": "copy", "params": params, "median_us": copy_us,
                        "metrics": {"gbps": copy_gbps}})
        for bits in (4, 8):
            us = graph_time_us([lambda: qops.group_quantize(w, bits, 128, False)], smoke)
            moved = w.numel() * 2 + w.numel() * bits // 8 + (w.numel() // 128) * 5  # read bf16, write q + S + Z
            gbps = moved / us / 1e3
            _add(records, {"benchmark": "group_quant", "impl": f"qtorch_int{bits}",
                            "params": {**params, "bits": bits, "group_size": 128, "symmetric": False},
                            "median_us": us, "metrics": {"gbps": gbps, "fraction_of_copy": gbps / copy_gbps}})
    return records


def bench_act_quant(device, smoke):
    import qtorch.ops as qops
    from qtorch.ops import routing

    records = []
    for m, k in ([(4, 100)] if smoke else ACT_SHAPES):
        xs = [torch.randn(m, k, device=device).to(torch.bfloat16) for _ in range(copies_for(m * k * 2, smoke))]
        dsts = [torch.empty_like(x) for x in xs]
        copy_us = graph_time_us([lambda x=x, d=d: d.copy_(x) for x, d in zip(xs, dsts)], smoke)
        moved = m * k * 2 + m * k + m * 8
        params = {"M": m, "K": k, "dtype": "bfloat16"}
        _add(records, {"benchmark": "act_quant", "impl": "copy", "params": params, "median_us": copy_us,
                        "metrics": {"gbps": 2 * m * k * 2 / copy_us / 1e3}})
        # every CUDA backend of qtorch::quantize_per_token side by side (the routing table's preference order)
        for backend in [b.name for b in routing.backends("quantize_per_token") if b.name in ("cuda_kernel", "triton")]:
            if device.type != "cuda" and backend == "cuda_kernel":
                continue
            with qops.force_backend("quantize_per_token", backend):
                us = graph_time_us([lambda x=x: qops.quantize_per_token(x) for x in xs], smoke)
            _add(records, {"benchmark": "act_quant", "impl": f"qtorch_{backend}", "params": params, "median_us": us,
                            "metrics": {"gbps": moved / us / 1e3,
                                        "fraction_of_copy": (moved / us) / (4 * m * k / copy_us)}})
    return records


def _torchao_weights(k, n, count, config, device):
    """`count` torchao-quantized (N, K) weights (tensor subclasses): F.linear(x, w) runs torchao's kernel."""
    from torchao.quantization import quantize_

    weights = []
    for _ in range(count):
        lin = torch.nn.Linear(k, n, bias=False, device=device, dtype=torch.bfloat16)
        quantize_(lin, config)
        weights.append(lin.weight)
    return weights


def _torchao_configs():
    """{impl: (config factory, compile?)} for the torchao baselines that import here."""
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
    except ImportError:
        return {}
    return {
        "torchao_int4wo": (lambda: Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d"), False),
        "torchao_int8wo": (lambda: Int8WeightOnlyConfig(), True),
    }


def _weight_only_on(path, x, q, bits, group_size):
    """qtorch::weight_only_linear on the backend of `path` ("auto": the routing table's choice)."""
    import qtorch.ops as qops

    if path == "auto":
        return qops.weight_only_linear(x, *q, bits, group_size, None)
    with qops.force_backend("weight_only_linear", PATH_BACKENDS[path]):
        return qops.weight_only_linear(x, *q, bits, group_size, None)


def bench_weight_only(device, smoke, paths):
    import qtorch.ops as qops

    records = []
    shapes = [(256, 384)] if smoke else WEIGHT_SHAPES
    ms = [1, 5] if smoke else MS
    baselines = {} if smoke else _torchao_configs()
    for k, n in shapes:
        count = copies_for(n * k // 2, smoke)  # int4 bytes set the copy count (bf16 then streams too)
        ws = [torch.randn(n, k, device=device).to(torch.bfloat16) * 0.02 for _ in range(count)]
        quant = {
            "qtorch_w4a16": (4, 128, [qops.group_quantize(w, 4, 128, False) for w in ws]),
            "qtorch_w8a16": (8, k, [_per_channel_int8(w) for w in ws]),
        }
        ao = {}
        for impl, (factory, compiled) in baselines.items():
            try:
                # one compiled F.linear per shape, shared by all weight copies (guards on metadata, not identity)
                ao[impl] = (_torchao_weights(k, n, count, factory(), device),
                            torch.compile(F.linear) if compiled else F.linear)
            except Exception as exc:  # a baseline that does not run here is reported, not fatal
                print(f"[bench] {impl} unavailable for K={k} N={n}: {type(exc).__name__}: {exc}")
        for m in ms:
            x = torch.randn(m, k, device=device).to(torch.bfloat16)
            params = {"M": m, "K": k, "N": n, "dtype": "bfloat16"}
            bf16_us = graph_time_us([lambda w=w: F.linear(x, w) for w in ws], smoke)
            _add(records, _wo_record("bf16", params, bf16_us, bf16_us, m, n, k, 16))
            for impl, (bits, g, qs) in quant.items():
                for path in _paths_for(m, paths):
                    us = graph_time_us([lambda q=q: _weight_only_on(path, x, q, bits, g) for q in qs], smoke)
                    name = impl if path == "auto" else f"{impl}_{path}"
                    _add(records, _wo_record(name, {**params, "group_size": g, "path": path}, us, bf16_us, m, n, k,
                                              bits, groups=n * (k // g)))
            for impl, (weights, linear) in ao.items():
                if impl == "torchao_int8wo" and m not in TORCHAO_INT8_M:
                    continue
                try:
                    us = graph_time_us([lambda w=w, linear=linear: linear(x, w) for w in weights], smoke)
                except Exception as exc:
                    print(f"[bench] {impl} failed at M={m} K={k} N={n}: {type(exc).__name__}: {exc}")
                    continue
                bits = 4 if "int4" in impl else 8
                _add(records, _wo_record(impl, params, us, bf16_us, m, n, k, bits))
    return records


FORCED_PATH_MS = (1, 4, 16, 64, 128)  # where the kernels the op does not pick are also timed (to place the M limits)
# Record names of the forced paths -> backends of qtorch::weight_only_linear (qtorch.ops.weight_only).
PATH_BACKENDS = {"gemv": "triton_gemv", "mma_swapped": "triton_mma_swapped", "mma": "triton_mma",
                 "dequant": "dequant_cublas"}
PATH_MAX_M = {"gemv": 16, "mma_swapped": 128, "mma": 1 << 30, "dequant": 1 << 30}  # forced paths timed up to this M


def _paths_for(m, paths):
    """The kernel the op runs ("auto") plus, at FORCED_PATH_MS, every other kernel forced (to place GEMV_MAX_M,
    SWAPPED_MAX_M and DEQUANT_MIN_M from one run)."""
    return [p for p in paths if p == "auto" or (m in FORCED_PATH_MS and m <= PATH_MAX_M[p])]


def _per_channel_int8(w):
    """Per-channel symmetric int8 in the group_quantize layout (group_size = K): q (N, K) int8, S (N, 1), Z (N, 1)."""
    scale = w.float().abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(w.float() / scale), -128, 127).to(torch.int8)
    return q, scale, torch.zeros_like(scale, dtype=torch.int8)


def _wo_record(impl, params, us, bf16_us, m, n, k, bits, groups=0):
    moved = n * k * bits / 8 + groups * 5 + m * k * 2 + m * n * 2
    return {"benchmark": "weight_only_linear", "impl": impl, "params": params, "median_us": us,
            "metrics": {"speedup_vs_bf16": bf16_us / us, "gbps": moved / us / 1e3, "tops": 2 * m * n * k / us / 1e6}}


def _add(records, record):
    """Append and print at once: a run cut short by a time limit still shows what it measured."""
    records.append(record)
    print(f"  {record['benchmark']:18s} {record['impl']:20s} {json.dumps(record['params'])} "
          f"{record['median_us']:9.2f} us {json.dumps(record['metrics'])}", flush=True)


def save(records, device):
    """Merge into benchmarks/results/<gpu>.json: replace this run's benchmarks' records, keep the others."""
    meta = run_meta(device)
    return merge_records(results_path(device), [{**r, **meta} for r in records])

def print_table(records):
    print("\n== group_quant / act_quant (GB/s = bytes read + written / time) ==")
    for r in records:
        if r["benchmark"] in ("group_quant", "act_quant"):
            frac = r["metrics"].get("fraction_of_copy")
            print(f"{r['benchmark']:11s} {r['impl']:14s} {json.dumps(r['params']):70s} {r['median_us']:9.2f} us "
                  f"{r['metrics']['gbps']:8.1f} GB/s" + (f"  {100 * frac:5.1f}% of copy" if frac else ""))
    print("\n== weight_only_linear (speedup = bf16 / impl, same run) ==")
    rows = {}
    for r in records:
        if r["benchmark"] == "weight_only_linear":
            p = r["params"]
            rows.setdefault((p["K"], p["N"]), {}).setdefault(r["impl"], {})[p["M"]] = r
    for (k, n), impls in rows.items():
        ms = sorted({m for v in impls.values() for m in v})
        print(f"\nK={k} N={n}   " + " ".join(f"{'M=' + str(m):>14s}" for m in ms))
        for impl, by_m in impls.items():
            cells = []
            for m in ms:
                r = by_m.get(m)
                cells.append(f"{r['median_us']:7.1f}us {r['metrics']['speedup_vs_bf16']:4.2f}x" if r else " " * 14)
            print(f"{impl:22s} " + " ".join(f"{c:>14s}" for c in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, wall-clock timing, no results file")
    parser.add_argument("--paths", default="auto,gemv,mma_swapped,mma,dequant",
                        help="weight-only kernels to time: auto (what the op runs), gemv, mma_swapped, mma, dequant")
    parser.add_argument("--only", default="group_quant,act_quant,weight_only_linear", help="benchmarks to run")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        sys.exit("needs a CUDA GPU (or --smoke with TRITON_INTERPRET=1)")
    only = args.only.split(",")
    paths = [p for p in args.paths.split(",") if not (args.smoke and p == "auto")]
    benches = {"group_quant": lambda: bench_group_quant(device, args.smoke),
               "act_quant": lambda: bench_act_quant(device, args.smoke),
               "weight_only_linear": lambda: bench_weight_only(device, args.smoke, paths)}
    records = []
    for name in only:
        records += benches[name]()
        if not args.smoke:  # saved after each benchmark, so a run cut short keeps what finished
            print(f"wrote {save(records, device)}", flush=True)
    print_table(records)


if __name__ == "__main__":
    main()
