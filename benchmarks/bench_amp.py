"""Mixed-precision training benchmark (issue 6): a LLaMA-style decoder trained for a fixed number of steps in fp32,
with torch.amp (autocast + GradScaler), and with qtorch.amp.MixedPrecision in fp16 and bf16, side by side.

Every variant starts from the same fp32 weights and sees the same batches (a synthetic bigram language whose loss
falls fast), uses AdamW (same implementation for all) and clips the gradient norm at 1. Measured per variant:
median step time (CUDA events around forward + loss + backward + optimizer step), tokens/s, peak memory after
warm-up (torch.cuda.max_memory_allocated: optimizer state already allocated), final training loss (mean of the last 5
steps), and the peak predicted by qtorch.analysis.training_step_peak when importable.

    python benchmarks/bench_amp.py                     # H200 defaults: llama-200m, batch 8, seq 2048, 50 steps
    python benchmarks/bench_amp.py --compile-impls torch_amp,qtorch_fp16   # also torch.compile'd variants
    python benchmarks/bench_amp.py --device cpu --model tiny --batch 2 --seq 32 --steps 4 --warmup 1 \
        --results-dir /tmp   # CPU smoke test
"""
import argparse
import contextlib
import copy
import gc
import json
import statistics
import time

import torch
import torch.nn.functional as F

from records import merge_records, results_path, run_meta

from qtorch.amp import MixedPrecision
from qtorch.models import build_llama, get_config

IMPLS = ("fp32", "fp32_tf32", "torch_amp", "torch_amp_bf16", "qtorch_fp16", "qtorch_bf16")
# impl -> qtorch.analysis recipe for the predicted peak
FINAL_WINDOW = 5  # final_loss = mean training loss of the last 5 steps (the same batches in every variant)
DTYPE_OF = {"fp32": "float32", "fp32_tf32": "float32", "torch_amp": "float16", "torch_amp_bf16": "bfloat16",
            "qtorch_fp16": "float16", "qtorch_bf16": "bfloat16"}
RECIPE_OF = {"fp32": "fp32", "fp32_tf32": "fp32", "torch_amp": "torch-amp", "torch_amp_bf16": "torch-amp",
             "qtorch_fp16": "amp-fp16", "qtorch_bf16": "amp-bf16"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="llama-200m", help="qtorch.models preset (llama-200m: 220 M parameters)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=50, help="training steps per variant, warm-up included")
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps (allocations, cuBLAS heuristics)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--adam-impl", choices=("fused", "foreach"), default="fused")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    p.add_argument("--compile-impls", default="", help="impls to run again with torch.compile(model) "
                                                         "(records '<impl>_compiled')")
    p.add_argument("--device", default="cuda")
    p.add_argument("--results-dir", default=None,
                   help="merge records into <dir>/<gpu>.json (default benchmarks/results)")
    p.add_argument("--out", default=None, help="also write this run's records here")
    args = p.parse_args(argv)
    for flag in ("impls", "compile_impls"):
        impls = [i for i in getattr(args, flag).split(",") if i]
        unknown = sorted(set(impls) - set(IMPLS))
        if unknown:
            p.error(f"--{flag.replace('_', '-')}: unknown {unknown}; valid: {','.join(IMPLS)}")
        setattr(args, flag, impls)
    if not 0 <= args.warmup < args.steps:
        p.error("--warmup: expected 0 <= warmup < steps")
    return args


def bigram_batches(steps: int, batch: int, seq: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """(steps, batch, seq + 1) int64 token ids: each next token is one of 8 fixed successors of the current one,
    over the first min(vocab, 4096) ids (loss floor ln 8 ≈ 2.08; ln(vocab) at initialization)."""
    g = torch.Generator().manual_seed(seed)
    n = min(vocab, 4096)
    successors = torch.randint(0, n, (n, 8), generator=g)  # (n, 8)
    tokens = torch.empty(steps * batch, seq + 1, dtype=torch.int64)
    tokens[:, 0] = torch.randint(0, n, (steps * batch,), generator=g)
    choice = torch.randint(0, 8, (steps * batch, seq), generator=g)
    for t in range(seq):
        tokens[:, t + 1] = successors[tokens[:, t], choice[:, t]]
    return tokens.view(steps, batch, seq + 1)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross entropy in fp32 over (B·S, V) logits (the form qtorch.analysis.training_step_peak models)."""
    return F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())


def make_step(impl: str, model, optimizer, device: torch.device, compile_model: bool):
    """A closure running one training step on tokens (B, S+1) and returning the loss, and one reporting the scaling
    state at the end. The model is compiled (if asked) after MixedPrecision has converted it."""
    max_norm = 1.0
    if impl in ("fp32", "fp32_tf32"):
        run = torch.compile(model) if compile_model else model

        def step(tokens):
            loss = next_token_loss(run(tokens[:, :-1]), tokens)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss
        return step, lambda: {}
    if impl in ("torch_amp", "torch_amp_bf16"):
        run = torch.compile(model) if compile_model else model
        dtype = torch.float16 if impl == "torch_amp" else torch.bfloat16
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

        def step(tokens):
            with torch.autocast(device.type, dtype=dtype):
                loss = next_token_loss(run(tokens[:, :-1]), tokens)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            return loss
        return step, lambda: {"final_loss_scale": scaler.get_scale() if scaler.is_enabled() else None}
    mp = MixedPrecision(model, optimizer, dtype=torch.float16 if impl == "qtorch_fp16" else torch.bfloat16)
    run = torch.compile(model) if compile_model else model

    def step(tokens):
        loss = next_token_loss(run(tokens[:, :-1]), tokens)
        mp.backward(loss)
        mp.step(max_grad_norm=max_norm)
        return loss
    return step, lambda: {"final_loss_scale": mp.loss_scale, "skipped_steps": mp.skipped_steps}


@contextlib.contextmanager
def float32_matmul_precision(precision: str):
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def run_variant(impl: str, compiled: bool, args, base_model, batches: torch.Tensor, device: torch.device) -> dict:
    torch._dynamo.reset()  # a fresh compile cache per variant (the same code objects are compiled per model)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = copy.deepcopy(base_model).to(device).train()
    fused = args.adam_impl == "fused"
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=fused, foreach=not fused)
    step, scaling_state = make_step(impl, model, optimizer, device, compiled)
    losses, times_ms = [], []
    with float32_matmul_precision("high" if impl == "fp32_tf32" else "highest"):
        for i in range(args.steps):
            if i == args.warmup and device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            tokens = batches[i]
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                losses.append(step(tokens).detach())
                end.record()
                if i >= args.warmup:
                    times_ms.append((start, end))
            else:
                t0 = time.perf_counter()
                losses.append(step(tokens).detach())
                if i >= args.warmup:
                    times_ms.append((time.perf_counter() - t0) * 1e3)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        times_ms = [s.elapsed_time(e) for s, e in times_ms]
    result = {"impl": impl, "compiled": compiled, "median_ms": statistics.median(times_ms),
              "losses": torch.stack(losses).float().tolist(), "n_params": sum(p.numel() for p in model.parameters()),
              **scaling_state()}
    if device.type == "cuda":
        result["peak_mem_bytes"] = torch.cuda.max_memory_allocated(device)
    del model, optimizer, step
    return result


def predicted_peaks(args) -> dict:
    """impl -> bytes predicted by qtorch.analysis.training_step_peak, or {} when the analysis module is missing."""
    try:
        from qtorch.analysis import from_llama_config, training_step_peak
    except ImportError as exc:
        print(f"note: qtorch.analysis not importable ({exc}); predicted_mem_bytes left out")
        return {}
    cfg = from_llama_config(get_config(args.model))
    return {impl: training_step_peak(cfg, args.batch, args.seq, recipe=RECIPE_OF[impl], optimizer="adam",
                                     optimizer_impl=args.adam_impl).peak for impl in IMPLS}


def model_tflops(args, step_ms: float) -> float | None:
    try:
        from qtorch.analysis import from_llama_config, training_flops
    except ImportError:
        return None
    flops = training_flops(from_llama_config(get_config(args.model)), args.batch, args.seq).model_flops
    return flops / (step_ms * 1e-3) / 1e12


def to_records(results: list[dict], args, device: torch.device, predicted: dict) -> list[dict]:
    by_key = {(r["impl"], r["compiled"]): r for r in results}
    fp32 = by_key.get(("fp32", False))
    common = run_meta(device)
    records = []
    for r in results:
        amp = by_key.get(("torch_amp", r["compiled"]))  # the torch.amp baseline of the same compile mode
        final = statistics.fmean(r["losses"][-FINAL_WINDOW:])
        params = {"model": args.model, "n_params": r["n_params"], "batch": args.batch, "seq": args.seq,
                  "steps": args.steps, "warmup": args.warmup, "optimizer": f"AdamW({args.adam_impl})", "lr": args.lr,
                  "max_grad_norm": 1.0, "final_loss_window": FINAL_WINDOW, "compiled": r["compiled"], "tf32": r["impl"] == "fp32_tf32",
                  "dtype": DTYPE_OF[r["impl"]],
                  "data": f"synthetic bigram, 8 successors over {min(get_config(args.model).vocab_size, 4096)} ids"}
        metrics = {"tokens_per_s": args.batch * args.seq / (r["median_ms"] * 1e-3), "final_loss": final,
                   "first_loss": r["losses"][0]}
        tflops = model_tflops(args, r["median_ms"])
        if tflops is not None:
            metrics["model_tflops"] = tflops
        if "peak_mem_bytes" in r:
            metrics["peak_mem_bytes"] = r["peak_mem_bytes"]
        if r["impl"] in predicted:
            metrics["predicted_mem_bytes"] = predicted[r["impl"]]
        if fp32 is not None:
            metrics["speedup_vs_fp32"] = fp32["median_ms"] / r["median_ms"]
            fp32_final = statistics.fmean(fp32["losses"][-FINAL_WINDOW:])
            metrics["final_loss_rel_vs_fp32"] = (final - fp32_final) / fp32_final
        if amp is not None:
            metrics["speedup_vs_torch_amp"] = amp["median_ms"] / r["median_ms"]
        for key in ("final_loss_scale", "skipped_steps"):
            if r.get(key) is not None:
                metrics[key] = r[key]
        impl = r["impl"] + ("_compiled" if r["compiled"] else "")
        records.append({"benchmark": "amp_train", "impl": impl, "params": params,
                        "median_us": r["median_ms"] * 1e3, "metrics": metrics, **common})
    return records


def print_table(records: list[dict]) -> None:
    def cell(metrics, key, spec, scale=1.0, suffix=""):
        width = int(spec.lstrip("+").split(".")[0]) + len(suffix)
        return format(metrics[key] / scale, spec) + suffix if key in metrics else "-".rjust(width)

    print(f"\n{'impl':<15} {'step ms':>8} {'tok/s':>8} {'TFLOP/s':>8} {'peak GiB':>8} {'pred GiB':>8} "
          f"{'final loss':>10} {'Δloss':>7} {'vs fp32':>7} {'vs amp':>6}")
    for r in records:
        m = r["metrics"]
        print(f"{r['impl']:<15} {r['median_us'] / 1e3:>8.1f} {m['tokens_per_s']:>8.0f} "
              f"{cell(m, 'model_tflops', '8.1f')} {cell(m, 'peak_mem_bytes', '8.2f', 2.0**30)} "
              f"{cell(m, 'predicted_mem_bytes', '8.2f', 2.0**30)} "
              f"{m['final_loss']:>10.4f} {cell(m, 'final_loss_rel_vs_fp32', '+7.2%')} "
              f"{cell(m, 'speedup_vs_fp32', '6.2f', suffix='x')} {cell(m, 'speedup_vs_torch_amp', '5.2f', suffix='x')}")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    cfg = get_config(args.model)
    base_model = build_llama(args.model, seed=0, dtype=torch.float32, device="cpu", max_seq_len=args.seq)
    batches = bigram_batches(args.steps, args.batch, args.seq, cfg.vocab_size).to(device)
    results = []
    for impl, compiled in [(i, False) for i in args.impls] + [(i, True) for i in args.compile_impls]:
        t0 = time.perf_counter()
        results.append(run_variant(impl, compiled, args, base_model, batches, device))
        r = results[-1]
        print(f"{impl}{' (compiled)' if compiled else ''}: {r['median_ms']:.1f} ms/step, "
              f"loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    records = to_records(results, args, device, predicted_peaks(args))
    path = merge_records(results_path(device, args.results_dir), records)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"records": records, "losses": {rec["impl"]: r["losses"] for rec, r in zip(records, results)}},
                      f, indent=1)
    print(f"records merged into {path}")
    print_table(records)
    return records


if __name__ == "__main__":
    main()
