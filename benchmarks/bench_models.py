"""Whole-model benchmark (issue 8): LLaMA-2-7B-shaped prefill / decode speed, bf16 vs qtorch vs torchao, and the
MiniLM accuracy table, written as records to benchmarks/results/<gpu>.json (benchmarks model_prefill, model_decode,
model_accuracy; this run's records replace earlier ones of the same benchmark and implementation, so the schemes
can be measured in separate runs (--schemes), each beside its own bf16 run).

    python benchmarks/bench_models.py                         # GPU: speed (compiled, CUDA graphs) + accuracy
    python benchmarks/bench_models.py --layers 2 --no-accuracy
    python benchmarks/bench_models.py --device cpu --no-speed # accuracy records on the CPU -> results/cpu.json
    python benchmarks/bench_models.py --schemes w8a8 --no-torchao --no-accuracy --act-quant fused
                                                              # W8A8 with the activation quantization fused by Inductor

Speed: `--layers` blocks of the 7B shape are built and timed and tokens/s projected to 32 blocks
(qtorch.eval.speed: t_32 = t_fixed + 32/L (t_L - t_fixed)); the measured slice and fixed times are in each record.
Accuracy: all-MiniLM-L6-v2, cosine of the embeddings vs float32 per scheme on two evaluation sets (qtorch/data);
cosine_mean is the worse set's mean, cosine_mean_<set> each set's.
"""
import argparse
import dataclasses
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from records import merge_records, results_path, run_meta  # noqa: E402

from qtorch.cli.bench import detail_table, speed_table  # noqa: E402
from qtorch.cli.demo import results_table  # noqa: E402
from qtorch.eval.speed import run_speed  # noqa: E402
from qtorch.ops import force_backend  # noqa: E402
from qtorch_baselines import torchao  # noqa: E402
from qtorch_baselines.speed import speed_baselines  # noqa: E402

ACCURACY_SCHEMES = ("w8a8", "fp8-sim", "w8a8-sq", "w8a8-static", "w8a8-static-sq", "w8a16", "w4a16", "w4a16-clip",
                    "w4a16-gptq", "w4a16-awq", "w4a16-awq-gptq", "mixed45", "mixed5")
PRESET = "llama2-7b-shaped"
# --act-quant: how compiled W8A8 layers quantize their activations (qtorch::quantize_per_token)
ACT_QUANT = {"fused": "aten form fused by Inductor into the producing kernel (qtorch.ops.fused_quant)",
             "kernel": "Triton kernel (triton_kernels.act_quant), one pass per linear layer"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--layers", type=int, default=2, help="7B-shaped blocks timed (projected to 32)")
    p.add_argument("--schemes", default="w8a8,w4a16,w8a16")
    p.add_argument("--eager", action="store_true", help="no torch.compile (default: reduce-overhead, CUDA graphs)")
    p.add_argument("--act-quant", default="kernel", choices=tuple(ACT_QUANT),
                   help="compiled W8A8 activation quantization: fused into its producer (default) or the Triton "
                        "kernel (records named qtorch_w8a8-act-kernel)")
    p.add_argument("--no-torchao", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--results-dir", default=None, help="merge records into <dir>/<gpu>.json (default "
                                                       "benchmarks/results)")
    p.add_argument("--out", default=None, help="also write this run's records and the per-layer SQNR to this JSON")
    return p.parse_args(argv)


def speed_records(measurements, args, common: dict) -> list[dict]:
    base = {(m.phase, m.batch): m for m in measurements if m.impl == "bf16"}
    by_key = {(m.impl, m.phase, m.batch): m for m in measurements}
    records = []
    for m in measurements:
        params = {"model": PRESET, "layers_timed": args.layers, "layers_reported": 32, "dtype": "bfloat16",
                  "batch": m.batch, "compiled": not args.eager,
                  "mode": "eager" if args.eager else "reduce-overhead (CUDA graphs), fullgraph",
                  "projection": "t_32 = t_fixed + 32/layers_timed * (t_slice - t_fixed); t_fixed: embedding, final "
                                "norm, head without blocks (eager, one CUDA graph)",
                  "weights": "seeded random N(0, 0.02^2), every linear layer quantized (head too)"}
        if m.impl.startswith("qtorch_w8a8"):
            params["act_quant"] = ("Triton kernel (eager)" if args.eager
                                   else ACT_QUANT["fused" if m.impl.endswith("-act-fused") else "kernel"])
        if m.phase == "prefill":
            params.update({"prefill_tokens": m.tokens, "kv_cache": "none (causal SDPA)"})
        else:
            params.update({"decode_pos": 128, "kv_cache_len": 256})
        metrics = {"tokens_per_s": m.tokens_per_s, "slice_us": m.slice_us, "fixed_us": m.fixed_us,
                   "compile_s": m.compile_s, **m.extra}
        if (m.phase, m.batch) in base:
            metrics["speedup_vs_bf16"] = base[(m.phase, m.batch)].full_us / m.full_us
        if m.impl.startswith("qtorch_") and m.impl.split("_", 1)[1] in torchao.NAMES:
            ao = by_key.get((torchao.NAMES[m.impl.split("_", 1)[1]], m.phase, m.batch))
            if ao is not None:
                metrics["speedup_vs_torchao"] = ao.full_us / m.full_us
        records.append({"benchmark": f"model_{m.phase}", "impl": m.impl, "params": params, "median_us": m.full_us,
                        "metrics": metrics, **common})
    return records


def accuracy_records(results, device: torch.device, dtype: torch.dtype, common: dict) -> list[dict]:
    from qtorch.data import EVAL_SETS, load_sentences
    from qtorch.eval.retrieval import VARIANTS

    records = []
    for r in results:
        impl = "qtorch_" + r.scheme if r.scheme != "float" else str(dtype).replace("torch.", "").replace(
            "bfloat16", "bf16").replace("float32", "fp32")
        params = {"model": "all-MiniLM-L6-v2", "scheme": r.scheme, "description": r.description,
                  "eval_sets": {name: len(load_sentences(name)) for name in EVAL_SETS},
                  "calibration_set": "calibration_generic",
                  "calibration_sentences": len(load_sentences("calibration_generic")),
                  "dtype": str(dtype).replace("torch.", ""), "device": device.type,
                  "reference": "float32 embeddings (mean pooling, L2-normalised)",
                  "retrieval": f"queries: the evaluation sentences; candidates: {VARIANTS} one-word edits of each "
                               "(qtorch.eval.retrieval); top-1 / MRR of float32's best candidate"}
        metrics = {**r.errors, "bits_per_weight": r.bits_per_weight, "weight_bytes": r.weight_bytes,
                   "quantize_s": r.quantize_s}
        if r.layer_sqnr_db:
            values = list(r.layer_sqnr_db.values())
            metrics["layer_sqnr_db_min"] = min(values)
            metrics["layer_sqnr_db_median"] = statistics.median(values)
        records.append({"benchmark": "model_accuracy", "impl": impl, "params": params, "metrics": metrics, **common})
    return records


def run_accuracy(device: torch.device):
    from qtorch.eval.evaluate import evaluate_schemes
    from qtorch.eval.tasks import minilm_task

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    task = minilm_task(device=device, dtype=dtype, progress=False)
    return evaluate_schemes(task, ACCURACY_SCHEMES, label="minilm", progress=False), dtype


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_models: no CUDA device; use --device cpu --no-speed for the accuracy records", file=sys.stderr)
        return 1
    if device.type == "cpu" and not args.no_speed:
        print("bench_models: the speed part needs a CUDA device (add --no-speed)", file=sys.stderr)
        return 1
    common = run_meta(device)
    records, layer_sqnr, failures = [], {}, {}
    tables = []
    from qtorch.models.minilm import MODELS_EXTRA_HINT, minilm_available

    if not args.no_accuracy and not minilm_available():
        print(f"bench_models: MiniLM is not installed, accuracy skipped ({MODELS_EXTRA_HINT})")
    elif not args.no_accuracy:
        results, dtype = run_accuracy(device)
        records += accuracy_records(results, device, dtype, common)
        layer_sqnr = {r.scheme: r.layer_sqnr_db for r in results}
        tables.append("MiniLM accuracy (cosine vs float32 embeddings):\n" + results_table(results))
    if not args.no_speed:
        schemes = tuple(s for s in args.schemes.split(",") if s)
        with_torchao = not args.no_torchao and torchao.available()
        if not args.no_torchao and not with_torchao:
            print("bench_models: torchao is not importable; its baselines are skipped")
        path = results_path(device, args.results_dir)

        printed = set()

        def named(done):  # the fused W8A8 path (not the library's CUDA default) gets its own records
            if args.act_quant == "kernel":
                return done
            return [dataclasses.replace(m, impl=m.impl + "-act-fused") if m.impl == "qtorch_w8a8" else m for m in done]

        def save_partial(done):  # a run cut short by a time limit keeps what it measured
            done = named(done)
            merge_records(path, records + speed_records(done, args, common), by_impl=True)
            for m in done:
                if (m.impl, m.phase, m.batch) not in printed:
                    printed.add((m.impl, m.phase, m.batch))
                    print(f"  {m.impl} {m.phase} b{m.batch}: slice {m.slice_us:,.1f} us, fixed {m.fixed_us:,.1f} us, "
                          f"projected {m.full_us:,.1f} us = {m.tokens_per_s:,.0f} tok/s (compile {m.compile_s:.1f} s)",
                          flush=True)

        act_quant = force_backend("quantize_per_token", "fusable" if args.act_quant == "fused" else "triton")
        with act_quant:  # decided when torch.compile traces the model (this thread)
            measurements, failures = run_speed(schemes, PRESET, args.layers, device=device,
                                               compile_model=not args.eager,
                                               baselines=speed_baselines(schemes, with_torchao),
                                               on_impl_done=save_partial, progress=False)
        measurements = named(measurements)
        records += speed_records(measurements, args, common)
        tables.append(detail_table(measurements))
        tables.append(f"{PRESET}, {args.layers} of 32 blocks timed, tokens/s projected to 32 (x: vs bf16):\n"
                      + speed_table(measurements))
    path = results_path(device, args.results_dir)
    merge_records(path, records, by_impl=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"records": records, "layer_sqnr_db": layer_sqnr, "failures": failures}, f, indent=1)
    print(f"\nwrote {len(records)} records to {path}")
    for impl, error in failures.items():
        print(f"FAILED {impl}: {error}")
    print("\n\n".join(tables))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
