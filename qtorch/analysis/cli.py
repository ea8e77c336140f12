"""python -m qtorch.analysis MODEL --batch B --seq S [--train ...] [--plot out.png]: FLOP and memory tables."""
import argparse
import os
import sys

from qtorch.analysis.config import ModelConfig, from_hf_config
from qtorch.analysis.conventions import CONVENTIONS
from qtorch.analysis.flops import GPU_PEAK_TFLOPS, forward_flops, mfu, peak_flops, training_flops
from qtorch.analysis.memory import (OPTIMIZERS, RECIPES, WEIGHT_FORMATS, activation_memory, kv_cache_bytes,
                                    model_state_memory, model_weight_bytes)
from qtorch.analysis.params import count_params, param_counts
from qtorch.analysis.peak import OPTIMIZER_IMPLS, inference_peak
from qtorch.analysis.sharding import sharded_training_peak
from qtorch.analysis.presets import PRESETS, get_preset
from qtorch.analysis.report import category_table, flop_table, format_table, gb, human, memory_table, peak_table


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qtorch.analysis",
                                description="FLOPs, parameters and memory of a transformer (LLaMA family, GPT-2 "
                                            "style, BERT).")
    p.add_argument("model", help=f"a preset ({', '.join(PRESETS)}), a Hugging Face config.json or its folder")
    p.add_argument("--batch", type=_positive_int, default=1, help="sequences per step (per GPU)")
    p.add_argument("--seq", type=_positive_int, default=None, help="tokens per sequence (default: max_seq_len)")
    p.add_argument("--conventions", choices=list(CONVENTIONS), default="qtorch",
                   help="FLOP conventions (docs/ANALYSIS.md); 'course' reproduces the course table's formula")
    p.add_argument("--train", action="store_true", help="training step: FLOPs, MFU, model states, activations")
    p.add_argument("--recipe", choices=list(RECIPES), default="amp-bf16")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam")
    p.add_argument("--optimizer-impl", choices=OPTIMIZER_IMPLS, default="fused")
    p.add_argument("--checkpointing", choices=("none", "layer"), default="none",
                   help="activation checkpointing at layer boundaries")
    p.add_argument("--gpus", type=_positive_int, default=1, help="data-parallel GPUs (ZeRO sharding)")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=0, help="ZeRO stage (3 = FSDP full shard)")
    p.add_argument("--params", type=_positive_float, default=None,
                   help="nominal parameter count for the memory tables (e.g. 175e9 as in the course)")
    p.add_argument("--step-time", type=_positive_float, default=None, help="measured step time (s), for MFU")
    p.add_argument("--gpu", choices=list(GPU_PEAK_TFLOPS), default="h200", help="peak FLOP/s for MFU")
    p.add_argument("--weight-format", choices=WEIGHT_FORMATS, default="bf16", help="inference weight storage")
    p.add_argument("--quantize-head", action="store_true", help="the LM head in --weight-format too")
    p.add_argument("--kv-cache", type=_positive_int, default=None, metavar="CONTEXT",
                   help="inference: a KV cache of CONTEXT positions")
    p.add_argument("--plot", metavar="PNG", default=None, help="write a figure of the FLOP and memory breakdown")
    return p


def load_model(name: str) -> ModelConfig:
    """A preset, or a config.json path or its folder."""
    if name.endswith(".json") or os.path.sep in name or os.path.isdir(name):
        if not os.path.isfile(name) and not os.path.isfile(os.path.join(name, "config.json")):
            raise ValueError(f"model: no such config file {name!r}")
        return from_hf_config(name)
    return get_preset(name)


def _model_section(cfg: ModelConfig) -> str:
    counts = param_counts(cfg)
    total = sum(counts.values())
    rows = [[k, f"{v:,}", f"{100 * v / total:.2f}%"] for k, v in counts.items()]
    rows.append(["total", f"{total:,}", "100%"])
    head = (f"{cfg.name}: v={cfg.vocab_size} h={cfg.hidden_size} N={cfg.n_layers} n={cfg.n_heads} "
            f"n_kv={cfg.kv_heads} d={cfg.d} i={cfg.intermediate_size} ({cfg.mlp}, {cfg.norm}, {cfg.position}"
            f"{', post-LN' if cfg.norm_position == 'post' else ''}"
            f"{'' if cfg.causal else ', bidirectional'}{f', {cfg.token_types} token types' if cfg.token_types else ''}"
            f"{', tied head' if cfg.tie_embeddings else ''}{'' if cfg.head == 'lm' else f', head {cfg.head}'}"
            f"{'' if cfg.bias == 'none' else f', biases: {cfg.bias}'})")
    notes = f"\nnote: {cfg.notes}" if cfg.notes else ""
    return head + notes + "\n\n" + format_table(["parameters", "count", "share"], rows)


def run(args) -> dict:
    """Print the tables; return what the figure needs."""
    cfg = load_model(args.model)
    seq = args.seq or cfg.max_seq_len
    print(_model_section(cfg))
    fwd = forward_flops(cfg, args.batch, seq, args.conventions)
    print(f"\nForward FLOPs, b={args.batch} s={seq}, conventions '{args.conventions}':\n{flop_table(fwd)}")
    for other in ("course", "qtorch"):
        if other != args.conventions:
            print(f"  ('{other}' conventions: {human(forward_flops(cfg, args.batch, seq, other).total)}FLOPs)")
    n_params = args.params or count_params(cfg)
    if args.train:
        train = training_flops(cfg, args.batch, seq, args.conventions,
                               "layer" if args.checkpointing == "layer" else "none")
        tokens = args.batch * seq
        print(f"\nTraining FLOPs per step (per GPU): forward {human(train.forward)}, backward {human(train.backward)}"
              f", recompute {human(train.recompute)}; model {human(train.model_flops)}, hardware "
              f"{human(train.hardware_flops)} (6·N·tokens rule: {human(6 * count_params(cfg) * tokens)})")
        print(category_table(train))
        if args.step_time:
            peak = peak_flops(args.gpu, "bf16")
            print(f"MFU at {args.step_time} s/step on {args.gpus} × {args.gpu} (bf16 peak {human(peak)}FLOP/s): "
                  f"{100 * mfu(train.model_flops * args.gpus, args.step_time, peak, args.gpus):.1f}% "
                  f"(HFU {100 * mfu(train.hardware_flops * args.gpus, args.step_time, peak, args.gpus):.1f}%)")
        states = model_state_memory(n_params, args.recipe, args.optimizer, args.zero, args.gpus)
        acts = activation_memory(cfg, args.batch, seq, RECIPES[args.recipe].activation_bytes, args.checkpointing)
        memory = {**states, "activations": acts.total}
        print(f"\nMemory per GPU: recipe {args.recipe} ({RECIPES[args.recipe].description}), optimizer "
              f"{args.optimizer}, ZeRO-{args.zero} over {args.gpus} GPU(s), checkpointing {args.checkpointing}, "
              f"{n_params:,.0f} parameters")
        print(memory_table(memory))
        if acts.checkpoints:
            print(f"  activations = layer-boundary checkpoints {gb(acts.checkpoints)} + one layer rebuilt "
                  f"{gb(acts.per_layer)} + outside the layers {gb(acts.outside_layers)}")
        if args.params is None and cfg.head == "lm":  # per-rank peak: qtorch/analysis/sharding.py states the assumptions
            peak = sharded_training_peak(cfg, args.batch, seq, args.recipe, args.optimizer, args.optimizer_impl,
                                         args.checkpointing, args.zero, args.gpus)
            print(f"\nPer-rank peak, ZeRO-{args.zero} over {args.gpus} GPU(s):")
            print(peak_table(peak))
        flops_by_category = train.by_category()
    else:
        weights = model_weight_bytes(cfg, args.weight_format, args.quantize_head)
        memory = {f"weights: {k}": v for k, v in weights.items()}
        if args.kv_cache:
            memory["kv cache"] = kv_cache_bytes(cfg, args.batch, args.kv_cache)
        print(f"\nInference memory, linear weights {args.weight_format}"
              f"{' (head too)' if args.quantize_head else ''}:")
        print(memory_table(memory))
        if cfg.head == "lm":
            print(peak_table(inference_peak(cfg, args.batch, seq, args.weight_format, args.quantize_head,
                                            kv_cache_len=args.kv_cache or 0)))
        flops_by_category = fwd.by_category()
    return {"cfg": cfg, "seq": seq, "flops": flops_by_category, "memory": memory}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.plot:
        from qtorch.analysis.plot import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
            print(f"error: --plot: the folder of {args.plot} does not exist; create it first", file=sys.stderr)
            return 2
    try:
        result = run(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        from qtorch.analysis.plot import plot_breakdown

        mode = "training" if args.train else "inference"
        plot_breakdown(args.plot, f"{result['cfg'].name}, b={args.batch}, s={result['seq']} ({mode})",
                       result["flops"], result["memory"])
        print(f"\nwrote {args.plot}")
    return 0
