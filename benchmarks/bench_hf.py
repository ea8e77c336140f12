"""Decode speed of Hugging Face `generate` on a model of LLaMA-2-7B-shaped layers (random weights; --layers of them,
default 2: the record is of that model, not projected to 32 layers): bf16 vs qtorch W4A16 and W8A8 quantized on load
through `from_pretrained(..., quantization_config=qtorch.hf.QtorchConfig(...), device_map=device)`.

Each implementation runs transformers' fast path — static KV cache, decode step compiled by torch.compile — with
greedy decoding of exactly --new-tokens tokens after a --prompt-tokens prompt, batch 1. Records (benchmark
"hf_generate", impl bf16 / qtorch_w4a16 / qtorch_w8a8) are merged into benchmarks/results/<gpu>.json: median_us is
the median time of one generate call divided by the tokens it produced; metrics tokens_per_s (new tokens / median
generate time, prefill included), speedup_vs_bf16, peak_mem_bytes (torch.cuda.max_memory_allocated during load and
generate), load_s (from_pretrained wall time). A run replaces every earlier "hf_generate" record of that GPU.

    python benchmarks/bench_hf.py                    # H200: ~1.5 min, dominated by three Inductor compilations
    python benchmarks/bench_hf.py --device cpu --layers 2 --hidden 256 --new-tokens 8 --no-compile \
        --results-dir /tmp/bench_hf                  # smoke test (~2 min on 2 shared cores)
"""
import argparse
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # qtorch from this checkout
from records import merge_records, results_path, run_meta  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--intermediate", type=int, default=None,
                   help="default 11008 for h=4096, else 2.6875·h rounded down to a multiple of 128")
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--schemes", default=",".join(SCHEMES), help=f"comma-separated subset of {', '.join(SCHEMES)} "
                                                              "(bf16 is always measured: speedups are against it)")
    p.add_argument("--no-compile", action="store_true", help="eager decode (no torch.compile)")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


SCHEMES = ("bf16", "qtorch_w4a16", "qtorch_w8a8")


def schemes(names: str) -> dict:
    """impl -> qtorch scheme (None: bf16), bf16 first."""
    import qtorch

    all_schemes = {"bf16": None,
                   "qtorch_w4a16": qtorch.GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False),
                   "qtorch_w8a8": qtorch.W8A8DynamicConfig()}
    chosen = {n.strip() for n in names.split(",") if n.strip()}
    unknown = chosen - set(all_schemes)
    if unknown:
        raise SystemExit(f"--schemes: unknown {sorted(unknown)}; valid: {', '.join(all_schemes)}")
    return {k: v for k, v in all_schemes.items() if k == "bf16" or k in chosen}


def build_checkpoint(args, path):
    from transformers import LlamaConfig, LlamaForCausalLM

    h = args.hidden
    i = args.intermediate or (11008 if h == 4096 else max(128, int(2.6875 * h) // 128 * 128))
    config = LlamaConfig(vocab_size=32000, hidden_size=h, num_hidden_layers=args.layers,
                         num_attention_heads=max(1, h // 128), num_key_value_heads=max(1, h // 128),
                         intermediate_size=i)
    with torch.device(args.device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(path)
    del model
    return config


def measure(path, scheme, args):
    import qtorch.hf
    from transformers import AutoModelForCausalLM, CompileConfig

    cuda = args.device.startswith("cuda")
    gc.collect()
    torch._dynamo.reset()  # the previous model's compiled decode step and CUDA graph pools go
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    kwargs = {} if scheme is None else {"quantization_config": qtorch.hf.QtorchConfig(
        scheme=scheme, modules_to_not_convert=["lm_head"])}
    if importlib.util.find_spec("accelerate") is not None:  # device_map: quantized layer by layer on the device
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map=args.device, **kwargs)
    else:
        print("bench_hf: accelerate not installed; loading on the CPU, then moving the model", file=sys.stderr)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, **kwargs).to(args.device)
    load_s = time.perf_counter() - start
    ids = torch.randint(3, 32000, (1, args.prompt_tokens), device=args.device)
    generate_kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                           cache_implementation="static", pad_token_id=0)
    if args.no_compile:
        generate_kwargs["disable_compile"] = True
    else:
        compile_config = CompileConfig(fullgraph=True)  # transformers' default mode: "reduce-overhead"
        compile_config._compile_all_devices = not cuda  # generate compiles by itself on GPUs only
        generate_kwargs["compile_config"] = compile_config
    times, first_s = [], None
    for i in range(args.repeats + 2):  # two warm-up calls: compilation, CUDA graphs
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, **generate_kwargs)
        if cuda:
            torch.cuda.synchronize()
        if i == 0:
            first_s = time.perf_counter() - t0
        elif i >= 2:
            times.append(time.perf_counter() - t0)
    new = out.shape[1] - ids.shape[1]
    assert new == args.new_tokens, f"generated {new} tokens, expected {args.new_tokens}"
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    del model
    return {"median_s": median, "tokens_per_s": new / median, "load_s": load_s, "first_s": first_s,
            "peak_mem_bytes": peak}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_hf: no CUDA device; use --device cpu for a smoke test", file=sys.stderr)
        return 1
    common = run_meta(args.device)
    import transformers

    chosen = schemes(args.schemes)
    start = time.perf_counter()
    records, results = [], {}
    with tempfile.TemporaryDirectory() as path:
        config = build_checkpoint(args, path)
        print(f"checkpoint built and saved in {time.perf_counter() - start:.1f} s", flush=True)
        for impl, scheme in chosen.items():
            results[impl] = measure(path, scheme, args)
            r = results[impl]
            print(f"{impl:14s} {r['tokens_per_s']:9.1f} tokens/s  load {r['load_s']:6.1f} s  first generate "
                  f"{r['first_s']:6.1f} s  peak {r['peak_mem_bytes'] or 0:,} B", flush=True)
    print(f"total {time.perf_counter() - start:.1f} s")
    for impl, scheme in chosen.items():
        r = results[impl]
        params = {"model": f"llama-shaped h={config.hidden_size} layers={config.num_hidden_layers} "
                           f"i={config.intermediate_size}", "batch": 1, "prompt_tokens": args.prompt_tokens,
                  "new_tokens": args.new_tokens, "dtype": "bfloat16", "cache": "static",
                  "compile": not args.no_compile, "scheme": None if scheme is None else scheme.to_dict(),
                  "transformers": transformers.__version__}
        metrics = {"tokens_per_s": round(r["tokens_per_s"], 2),
                   "speedup_vs_bf16": round(r["tokens_per_s"] / results["bf16"]["tokens_per_s"], 3),
                   "load_s": round(r["load_s"], 2)}
        if r["peak_mem_bytes"] is not None:
            metrics["peak_mem_bytes"] = r["peak_mem_bytes"]
        records.append({"benchmark": "hf_generate", "impl": impl, "params": params,
                        "median_us": round(1e6 * r["median_s"] / args.new_tokens, 2), "metrics": metrics, **common})
    out = merge_records(results_path(args.device, args.results_dir), records, benchmarks=["hf_generate"])
    print(f"records -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
