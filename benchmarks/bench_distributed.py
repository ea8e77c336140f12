"""Data-parallel mixed-precision training benchmark (issue 17): a ~1 B-parameter LLaMA-style decoder trained for a
fixed number of steps under DDP and FSDP2 (fully_shard), with qtorch.amp.MixedPrecision, with torch.amp (autocast),
and (FSDP2 only) with FSDP2's own MixedPrecisionPolicy, side by side.

Every variant starts from the same fp32 weights (seed 0) and sees the same global batches (the synthetic bigram
language of bench_amp.py; rank r takes rows r·B..(r+1)·B-1 of each global batch of world·B sequences), uses AdamW
and clips the gradient norm at 1. Measured per variant: median step time (CUDA events on rank 0; every step ends in
a collective, so the ranks are in step), global and per-GPU tokens/s, each rank's peak memory after warm-up
(torch.cuda.max_memory_allocated) against qtorch.analysis.sharded_training_peak, final loss (mean over the last 5
steps of the loss averaged over ranks).

Variants (engine x impl):
  ddp  x qtorch_bf16     MixedPrecision(bf16) then DistributedDataParallel: bf16 gradients all-reduced in bf16
  ddp  x torch_amp_bf16  fp32 model under DDP, torch.autocast(bf16): fp32 gradients all-reduced
  fsdp x qtorch_bf16     fully_shard (one unit per layer, each RMSNorm its own unit: it keeps fp32), then
                         MixedPrecision(bf16): bf16 shards gathered, bf16 gradients reduce-scattered, fp32 masters and
                         Adam states sharded
  fsdp x torch_amp_bf16  fully_shard on the fp32 model, torch.autocast(bf16)
  fsdp x fsdp_mp_bf16    fully_shard(mp_policy=MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32))
  fsdp_zero2 x <impl>    as fsdp with reshard_after_forward=False (ZeRO-2: weights stay gathered from forward to
                         backward), to check the stage-2 memory model
  single x <impl>        no wrapping (run without torchrun): the 1-GPU baseline for scaling and the fp32 reference

    torchrun --nproc_per_node 2 benchmarks/bench_distributed.py            # 2 x H200: writes results/h200x2.json
    torchrun --nproc_per_node 1 benchmarks/bench_distributed.py --batch 8  # 1 GPU: the DDP / FSDP2 code on CUDA
    python benchmarks/bench_distributed.py --engines single --impls fp32,qtorch_bf16 --batch 8   # 1-GPU baselines
    torchrun --nproc_per_node 2 benchmarks/bench_distributed.py --device cpu --model tiny --batch 2 --seq 32 \\
        --steps 2 --warmup 1 --results-dir /tmp                            # CPU smoke test (gloo)

Records: benchmark "distributed_train", impl "<engine>_<impl>", in benchmarks/results/<gpu>x<world>.json (world > 1)
or <gpu>.json (one process); a run replaces the records of the variants it ran; format:
/work/shared/BENCHMARK_RESULTS.md.
"""
import argparse
import copy
import gc
import os
import statistics
import sys
import time
from dataclasses import replace

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_amp import bigram_batches, make_step as amp_step, next_token_loss  # noqa: E402
from records import merge_records, results_path, run_meta  # noqa: E402

from qtorch.amp import MixedPrecision  # noqa: E402
from qtorch.models import build_llama, get_config  # noqa: E402

ENGINES = ("ddp", "fsdp", "fsdp_zero2", "single")
IMPLS = ("qtorch_bf16", "qtorch_fp16", "torch_amp_bf16", "fsdp_mp_bf16", "fp32")
# ~1 B parameters (953 M): llama-200m's vocabulary and context with TinyLlama-like width and depth (multi-head attention)
MODEL_1B = {"dim": 2048, "n_layers": 16, "n_heads": 16, "hidden_dim": 5632}
FINAL_WINDOW = 5
MAX_GRAD_NORM = 1.0
# (engine, impl) -> (qtorch.analysis recipe, ZeRO stage) for the per-rank prediction. fsdp_mp_bf16 keeps fp32
# sharded parameters (they are the masters) and fp32 sharded gradients, like torch-amp under ZeRO-3 (its gathered
# weights are bf16: the prediction counts them in fp32, 2 layers' worth too high).
RECIPE_OF = {"qtorch_bf16": "amp-bf16", "qtorch_fp16": "amp-fp16", "torch_amp_bf16": "torch-amp",
             "fsdp_mp_bf16": "torch-amp", "fp32": "fp32"}
ZERO_OF = {"ddp": 0, "fsdp": 3, "fsdp_zero2": 2, "single": 0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="llama-1b", help="llama-1b (953 M parameters) or a qtorch.models preset")
    p.add_argument("--batch", type=int, default=4, help="sequences per rank per step")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=30, help="training steps per variant, warm-up included")
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--adam-impl", choices=("fused", "foreach"), default="fused")
    p.add_argument("--engines", default="ddp,fsdp,fsdp_zero2", help=f"comma-separated subset of {','.join(ENGINES)}")
    p.add_argument("--impls", default="qtorch_bf16,torch_amp_bf16,fsdp_mp_bf16",
                   help=f"comma-separated subset of {','.join(IMPLS)} (fsdp_mp_bf16 runs under fsdp engines only)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: gloo smoke test, no memory")
    p.add_argument("--results-dir", default=None, help="merge records into <dir>/<gpu>[x<world>].json")
    args = p.parse_args(argv)
    for flag, valid in (("engines", ENGINES), ("impls", IMPLS)):
        chosen = [v for v in getattr(args, flag).split(",") if v]
        unknown = sorted(set(chosen) - set(valid))
        if unknown or not chosen:
            p.error(f"--{flag}: unknown or empty {unknown}; valid: {','.join(valid)}")
        setattr(args, flag, chosen)
    for flag in ("batch", "seq", "steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag}: expected a positive integer, got {getattr(args, flag)}")
    if not 0 <= args.warmup < args.steps:
        p.error("--warmup: expected 0 <= warmup < steps")
    return args


def variants(args, launched: bool) -> list[tuple[str, str]]:
    """(engine, impl) pairs to run: 'single' only without torchrun, the data-parallel engines only under torchrun
    (any number of processes: one GPU checks them on CUDA too); fsdp_mp_bf16 only under the fsdp engines."""
    engines = [e for e in args.engines if (e == "single") != launched]
    return [(e, i) for e in engines for i in args.impls if i != "fsdp_mp_bf16" or e.startswith("fsdp")]


def model_overrides(args) -> tuple[str, dict]:
    if args.model == "llama-1b":
        return "llama-200m", {**MODEL_1B, "max_seq_len": args.seq}
    return args.model, {"max_seq_len": args.seq}


def shard_fsdp(model, policy=None, reshard_after_forward: bool = True) -> None:
    """fully_shard each RMSNorm (an fp32 module under MixedPrecision: FSDP2 needs one dtype per unit), each
    transformer layer, then the root (embedding, final norm, head)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    options = {"mp_policy": policy or MixedPrecisionPolicy(), "reshard_after_forward": reshard_after_forward}
    for layer in model.layers:
        fully_shard(layer.attention_norm, **options)
        fully_shard(layer.ffn_norm, **options)
        fully_shard(layer, **options)
    fully_shard(model.norm, **options)
    fully_shard(model, **options)


def make_step(engine: str, impl: str, model, device: torch.device, args):
    """A closure running one training step on this rank's tokens (B, S+1) and returning the rank's loss (max grad
    norm 1, as bench_amp.py)."""
    from torch.nn.parallel import DistributedDataParallel

    if engine.startswith("fsdp"):
        from torch.distributed.fsdp import MixedPrecisionPolicy

        shard_fsdp(model, MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                   if impl == "fsdp_mp_bf16" else None, reshard_after_forward=engine == "fsdp")
    fused = args.adam_impl == "fused"
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=fused, foreach=not fused)
    if impl.startswith("qtorch"):
        mp = MixedPrecision(model, optimizer, dtype=torch.float16 if impl == "qtorch_fp16" else torch.bfloat16)
        run = DistributedDataParallel(model) if engine == "ddp" else model

        def step(tokens):
            loss = next_token_loss(run(tokens[:, :-1]), tokens)
            mp.backward(loss)
            mp.step(max_grad_norm=MAX_GRAD_NORM)
            return loss
        return step
    run = DistributedDataParallel(model) if engine == "ddp" else model  # same parameters: clipping sees them all
    # fsdp_mp_bf16: FSDP2 casts; the step is the fp32 one (bench_amp's: backward, clip, step, zero_grad)
    step, _ = amp_step("torch_amp_bf16" if impl == "torch_amp_bf16" else "fp32", run, optimizer, device, False)
    return step


def run_variant(engine: str, impl: str, args, base_model, batches: torch.Tensor, device: torch.device) -> dict:
    """Train one variant on this rank; returns its step times (rank 0), losses (mean over ranks) and peak."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = copy.deepcopy(base_model).to(device).train()
    step = make_step(engine, impl, model, device, args)
    world = dist.get_world_size() if dist.is_initialized() else 1
    losses, times = [], []
    for i in range(args.steps):
        if i == args.warmup and device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        tokens = batches[i].to(device, non_blocking=True)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            losses.append(step(tokens).detach().float())
            end.record()
            if i >= args.warmup:
                times.append((start, end))
        else:
            t0 = time.perf_counter()
            losses.append(step(tokens).detach().float())
            if i >= args.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        times = [s.elapsed_time(e) for s, e in times]
    losses = torch.stack(losses)
    if world > 1:
        dist.all_reduce(losses)
        losses /= world
    result = {"engine": engine, "impl": impl, "median_ms": statistics.median(times), "losses": losses.tolist(),
              "n_params": sum(p.numel() for p in base_model.parameters())}
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    peaks = [peak] * world
    if world > 1:
        dist.all_gather_object(peaks, peak)
    if device.type == "cuda":
        result["peak_mem_bytes_per_rank"] = peaks
    del model, step
    return result


def predicted_peak(engine: str, impl: str, args, world: int) -> int | None:
    """Per-rank peak from qtorch.analysis.sharded_training_peak (None when the analysis module is missing)."""
    try:
        from qtorch.analysis import from_llama_config
        from qtorch.analysis.sharding import sharded_training_peak
    except ImportError as exc:
        print(f"note: qtorch.analysis not importable ({exc}); predicted_mem_bytes left out")
        return None
    name, overrides = model_overrides(args)
    cfg = from_llama_config(replace(get_config(name), **overrides))
    return sharded_training_peak(cfg, args.batch, args.seq, RECIPE_OF[impl], "adam", args.adam_impl,
                                 zero=ZERO_OF[engine], gpus=world).peak


def to_records(results: list[dict], args, device: torch.device, world: int) -> list[dict]:
    common = run_meta(device)
    vocab = get_config(model_overrides(args)[0]).vocab_size
    records = []
    for r in results:
        final = statistics.fmean(r["losses"][-FINAL_WINDOW:])
        tokens_per_s = world * args.batch * args.seq / (r["median_ms"] * 1e-3)
        params = {"engine": r["engine"], "model": args.model, "n_params": r["n_params"], "world_size": world,
                  "batch_per_rank": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup,
                  "optimizer": f"AdamW({args.adam_impl})", "lr": args.lr, "max_grad_norm": MAX_GRAD_NORM,
                  "final_loss_window": FINAL_WINDOW, "recipe": RECIPE_OF[r["impl"]], "zero": ZERO_OF[r["engine"]],
                  "data": f"synthetic bigram, 8 successors over {min(vocab, 4096)} ids"}
        metrics = {"tokens_per_s": tokens_per_s, "tokens_per_s_per_gpu": tokens_per_s / world, "final_loss": final,
                   "first_loss": r["losses"][0]}
        peaks = r.get("peak_mem_bytes_per_rank")
        if peaks:
            metrics["peak_mem_bytes"] = max(peaks)
            for rank, peak in enumerate(peaks):
                metrics[f"peak_mem_bytes_rank{rank}"] = peak
            predicted = predicted_peak(r["engine"], r["impl"], args, world)
            if predicted is not None:
                metrics["predicted_mem_bytes"] = predicted
                metrics["mem_error_vs_predicted"] = (max(peaks) - predicted) / predicted
        records.append({"benchmark": "distributed_train", "impl": f"{r['engine']}_{r['impl']}", "params": params,
                        "median_us": r["median_ms"] * 1e3, "metrics": metrics, **common})
    return records


def results_file(device: torch.device, world: int, directory=None):
    """<gpu>x<world>.json for several ranks (h200x2.json), <gpu>.json for one."""
    path = results_path(device, directory)
    return path.with_name(f"{path.stem}x{world}.json") if world > 1 else path


def print_table(records: list[dict]) -> None:
    print(f"\n{'variant':<26} {'step ms':>8} {'tok/s':>9} {'tok/s/GPU':>9} {'peak GiB':>8} {'pred GiB':>8} "
          f"{'err':>6} {'final loss':>10}")
    for r in records:
        m = r["metrics"]
        peak = f"{m['peak_mem_bytes'] / 2**30:8.2f}" if "peak_mem_bytes" in m else f"{'-':>8}"
        pred = f"{m['predicted_mem_bytes'] / 2**30:8.2f}" if "predicted_mem_bytes" in m else f"{'-':>8}"
        err = f"{m['mem_error_vs_predicted']:+6.1%}" if "mem_error_vs_predicted" in m else f"{'-':>6}"
        print(f"{r['impl']:<26} {r['median_us'] / 1e3:>8.1f} {m['tokens_per_s']:>9.0f} "
              f"{m['tokens_per_s_per_gpu']:>9.0f} {peak} {pred} {err} {m['final_loss']:>10.4f}")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    launched = "WORLD_SIZE" in os.environ  # by torchrun
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if launched:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    todo = variants(args, launched)
    if not todo:
        raise SystemExit(f"--engines {','.join(args.engines)}: nothing runs {'under' if launched else 'without'} "
                         f"torchrun ('single' runs without it, the data-parallel engines under it)")
    name, overrides = model_overrides(args)
    base_model = build_llama(name, seed=0, dtype=torch.float32, device="cpu", **overrides)
    vocab = get_config(name).vocab_size
    batches = bigram_batches(args.steps, world * args.batch, args.seq, vocab)  # (steps, world·B, S+1): global
    batches = batches[:, rank * args.batch:(rank + 1) * args.batch].contiguous()  # this rank's rows
    results = []
    for engine, impl in todo:
        t0 = time.perf_counter()
        results.append(run_variant(engine, impl, args, base_model, batches, device))
        r = results[-1]
        if rank == 0:
            print(f"{engine} {impl}: {r['median_ms']:.1f} ms/step, loss {r['losses'][0]:.3f} -> "
                  f"{r['losses'][-1]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    records = to_records(results, args, device, world) if rank == 0 else []
    if rank == 0:
        path = merge_records(results_file(device, world, args.results_dir), records, by_impl=True)
        print(f"records merged into {path}")
        print_table(records)
    if launched:
        dist.barrier()
        dist.destroy_process_group()
    return records


if __name__ == "__main__":
    main()
