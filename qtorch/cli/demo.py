"""`qtorch demo`: quantize the embedded LLaMA-style model and, when installed, all-MiniLM-L6-v2 with every scheme,
and print per model: scheme | bits/weight | weight bytes | output error | latency, then its analysis summary.

Every scheme goes through qtorch.quantize_ (GPTQ and the mixed plan build the same QuantLinear layers through
qtorch.algorithms). Latency (median of 10 forwards after warm-up) is shown on a GPU only: on the CPU the quantized
layers run the PyTorch reference ops, so a CPU time would say nothing about qtorch's speed (`qtorch bench` measures
speed on a GPU). Progress bars are drawn only when stderr is a terminal (never with --no-progress).
"""
import argparse

import torch

from qtorch.cli.device import DEVICES, resolve_device
from qtorch.cli.progress import show_progress
from qtorch.cli.table import format_table, human_bytes
from qtorch.eval.schemes import SCHEMES

LLAMA_SCHEMES = ("w8a8", "w8a8-static", "w8a16", "w4a16", "w4a16-clip", "w4a16-gptq", "codebook4")
MINILM_SCHEMES = ("w8a8", "fp8-sim", "w8a8-static-sq", "w8a16", "w4a16", "mixed45")  # the rest: bench_models.py
DEMO_PRESETS = ("tiny", "small", "llama-200m")


def scheme_list(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SCHEMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scheme(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                                         f"valid: {', '.join(SCHEMES)}")
    return names


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="quantize the demo models with every scheme and print the tables",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda when available (default)")
    p.add_argument("--model", default="all", choices=("all", "llama", "minilm"),
                   help="all: the LLaMA-style model, then MiniLM when installed (default)")
    p.add_argument("--llama-preset", default="small", choices=DEMO_PRESETS, help="size of the LLaMA-style model")
    p.add_argument("--schemes", type=scheme_list, default=None,
                   help=f"comma-separated, from: {', '.join(SCHEMES)} (default: a set per model)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are also off when stderr is not a terminal)")
    p.set_defaults(run=run)


def _error_columns(results) -> tuple[list[str], list]:
    if "cosine_mean" in results[0].errors:
        sets = [k.removeprefix("cosine_mean_") for k in results[0].errors if k.startswith("cosine_mean_")]
        ranked = "retrieval_top1" in results[0].errors  # the near-duplicate retrieval check (qtorch.eval.retrieval)
        return (["cos mean (worse set)", *(f"cos {s}" for s in sets), "cos min",
                 *(["near-dup top-1", "near-dup MRR"] if ranked else [])],
                [lambda e: f"{e['cosine_mean']:.5f}", *(lambda e, s=s: f"{e['cosine_mean_' + s]:.5f}" for s in sets),
                 lambda e: f"{e['cosine_min']:.5f}",
                 *([lambda e: f"{e['retrieval_top1']:.1%}", lambda e: f"{e['retrieval_mrr']:.4f}"] if ranked else [])])
    return ["logits SQNR dB", "top-1 agree"], [lambda e: f"{e['sqnr_db']:.2f}", lambda e: f"{e['top1_agree']:.1%}"]


def results_table(results) -> str:
    """The latency column appears only when it was measured (on a GPU)."""
    err_head, err_fmt = _error_columns(results)
    timed = results[0].latency_ms is not None
    rows = [[r.scheme, f"{r.bits_per_weight:.3f}", human_bytes(r.weight_bytes), *(f(r.errors) for f in err_fmt),
             *([f"{r.latency_ms:.2f}"] if timed else []), f"{r.quantize_s:.1f}"] for r in results]
    return format_table(["scheme", "bits/weight", "weight bytes", *err_head, *(["latency ms"] if timed else []),
                         "quantize s"], rows)


def layer_sqnr_table(results) -> str:
    """One row per linear layer, one column per scheme: the layer's own output SQNR (dB, float input)."""
    quantized = [r for r in results if r.layer_sqnr_db]
    layers = list(quantized[0].layer_sqnr_db)
    rows = [[name] + [f"{r.layer_sqnr_db.get(name, float('nan')):.1f}" for r in quantized] for name in layers]
    return format_table(["layer (own output SQNR dB)"] + [r.scheme for r in quantized], rows)


def _print_legend(results):
    for r in results:
        print(f"  {r.scheme}: {r.description}")


def _demo_llama(args, device, dtype, progress):
    from qtorch.cli.summary import llama_summary
    from qtorch.eval.evaluate import evaluate_schemes
    from qtorch.eval.tasks import llama_task

    task = llama_task(args.llama_preset, device=device, dtype=dtype, progress=progress)
    batch, seq = task.inputs.shape
    print(f"\n== LLaMA-style '{args.llama_preset}' (seeded random weights) on {device.type}, "
          f"{str(dtype).replace('torch.', '')}: {batch} x {seq} random tokens; error vs the float32 logits ==")
    results = evaluate_schemes(task, args.schemes or LLAMA_SCHEMES, progress=progress, label="llama")
    print(results_table(results))
    _print_legend(results)
    print("  (random Gaussian weights have no outliers or redundancy to exploit: this table compares the schemes' "
          "mechanics; MiniLM below shows what a trained model keeps)")
    print(llama_summary(task.model, task.inputs, results))


def _demo_minilm(args, device, dtype, progress):
    from qtorch.cli.summary import encoder_summary
    from qtorch.eval.evaluate import evaluate_schemes
    from qtorch.eval.tasks import minilm_task
    from qtorch.data import EVAL_SETS, load_sentences

    task = minilm_task(device=device, dtype=dtype, progress=progress)
    sets = ", ".join(f"{name} ({len(load_sentences(name))})" for name in EVAL_SETS)
    print(f"\n== all-MiniLM-L6-v2 on {device.type}, {str(dtype).replace('torch.', '')}: cosine of the embeddings vs "
          f"float32 on two evaluation sets: {sets}; calibration on calibration_generic "
          f"({len(load_sentences('calibration_generic'))} sentences of another style; qtorch/data/README.md); near-dup: "
          f"ranking of one-word edits of each sentence vs float32's (qtorch.eval.retrieval) ==")
    results = evaluate_schemes(task, args.schemes or MINILM_SCHEMES, progress=progress, label="minilm")
    print(results_table(results))
    _print_legend(results)
    print(layer_sqnr_table(results))
    print(encoder_summary(task.model, task.inputs))


def run(args) -> int:
    from qtorch.models.minilm import MODELS_EXTRA_HINT, MissingDependencyError, minilm_available

    device = resolve_device(args.device)
    if args.model == "minilm" and not minilm_available():
        raise MissingDependencyError(f"--model minilm needs the optional models extra: {MODELS_EXTRA_HINT}")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    progress = show_progress(args)
    print(f"qtorch demo: torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + ("; no latency column on the CPU (the quantized layers run the reference ops; `qtorch bench` measures "
             "speed on a GPU)" if device.type == "cpu" else ""))
    if args.model in ("all", "llama"):
        _demo_llama(args, device, dtype, progress)
    if args.model in ("all", "minilm"):
        if minilm_available():
            _demo_minilm(args, device, dtype, progress)
        else:
            print(f"\n(MiniLM skipped: the optional package is not installed; {MODELS_EXTRA_HINT})")
    return 0
