"""`qtorch bench`: prefill and decode tokens/s of a LLaMA-shaped model, bf16 vs qtorch vs torchao and FP8, in one run.

  python -m qtorch bench --model llama2-7b-shaped --scheme w4a16 --compile
Prefill: one forward of 2,048 tokens. Decode: one step at batch 1 and 16 with a static KV cache. --compile wraps each
forward in torch.compile(mode="reduce-overhead") (CUDA graphs). Only --layers blocks are built and timed (compile
time grows with depth); tokens/s are projected to the preset's full depth from that slice and a block-less forward
(qtorch.eval.speed explains the projection). torchao's matching config runs too when torchao is installed, and beside
w8a8 the FP8 row-wise alternatives (e4m3 per token x per channel through torch._scaled_mm; torchao's
Float8DynamicActivationFloat8WeightConfig(PerRow)); the baselines come from the benchmark-side package
qtorch_baselines, imported here only.
"""
import argparse

from qtorch.cli.device import DEVICES, resolve_device
from qtorch.cli.errors import ENVIRONMENT_EXIT, CLIError
from qtorch.cli.progress import show_progress
from qtorch.cli.table import format_table
from qtorch.eval.schemes import SPEED_SCHEMES as SCHEMES
from qtorch.models.llama import LLAMA_CONFIGS


def _schemes(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if text.strip() == "all":
        return SCHEMES
    bad = [s for s in names if s not in SCHEMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown scheme(s) {', '.join(map(repr, bad)) or '(none given)'}; valid: "
                                         f"{', '.join(SCHEMES)} (comma-separated) or all")
    return names


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive batch sizes, got {text!r}")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="prefill / decode tokens/s of a LLaMA-shaped model vs bf16 and torchao",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="llama2-7b-shaped", choices=list(LLAMA_CONFIGS))
    p.add_argument("--scheme", type=_schemes, default=SCHEMES, help="w8a8, w4a16, w8a16, comma-separated, or all")
    p.add_argument("--compile", action="store_true", help='torch.compile(mode="reduce-overhead"): CUDA graphs')
    p.add_argument("--layers", type=int, default=4, help="blocks built and timed (default 4; the preset's depth is "
                                                         "projected)")
    p.add_argument("--prefill-len", type=int, default=2048)
    p.add_argument("--decode-batches", type=_batches, default=(1, 16))
    p.add_argument("--no-torchao", action="store_true", help="skip the torchao baselines")
    p.add_argument("--device", default="cuda", choices=DEVICES)
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are also off when stderr is not a terminal)")
    p.set_defaults(run=run)


def speed_table(measurements) -> str:
    """One row per implementation: projected tokens/s per phase and the speed-up over bf16 of the same phase."""
    base = {(m.phase, m.batch): m for m in measurements if m.impl == "bf16"}
    keys = list(dict.fromkeys((m.phase, m.batch) for m in measurements))
    by_impl: dict[str, dict] = {}
    for m in measurements:
        by_impl.setdefault(m.impl, {})[(m.phase, m.batch)] = m
    header = ["impl"] + [f"{phase} b{batch} tok/s" for phase, batch in keys]
    rows = []
    for impl, cells in by_impl.items():
        row = [impl]
        for key in keys:
            m = cells.get(key)
            if m is None:
                row.append("-")
                continue
            ratio = f" ({base[key].full_us / m.full_us:.2f}x)" if key in base and impl != "bf16" else ""
            row.append(f"{m.tokens_per_s:,.0f}{ratio}")
        rows.append(row)
    return format_table(header, rows)


def detail_table(measurements) -> str:
    """What each projection is made of: the timed slice, the block-less part, compile time, CUDA-graph skips."""
    rows = [[m.impl, m.phase, str(m.batch), f"{m.slice_us:,.1f}", f"{m.fixed_us:,.1f}", f"{m.full_us:,.1f}",
             f"{m.compile_s:.1f}", str(m.extra.get("cudagraph_skips", "-"))] for m in measurements]
    return format_table(["impl", "phase", "batch", "slice us", "fixed us", "projected us", "compile s",
                         "cudagraph skips"], rows)


def run(args) -> int:
    import torch
    from qtorch_baselines import torchao
    from qtorch_baselines.speed import speed_baselines

    from qtorch.eval.speed import run_speed

    if args.device == "cpu" or not torch.cuda.is_available():
        raise CLIError("bench: the speed benchmark needs a CUDA GPU (on a CPU qtorch runs its reference ops); "
                       "`qtorch demo` runs on a CPU", ENVIRONMENT_EXIT)
    device = resolve_device(args.device)
    depth = LLAMA_CONFIGS[args.model].n_layers
    if not 1 <= args.layers <= depth:
        raise CLIError(f"--layers: expected 1..{depth} for {args.model}, got {args.layers}")
    with_torchao = not args.no_torchao and torchao.available()
    if not args.no_torchao and not with_torchao:
        print("(torchao is not installed or does not import: its baselines are skipped; pip install torchao)")

    print(f"qtorch bench: {args.model} ({args.layers} of {depth} blocks timed, projected to {depth}), "
          f"{'compiled, CUDA graphs' if args.compile else 'eager'}, {torch.cuda.get_device_name(device)}, "
          f"torch {torch.__version__}")
    measurements, failures = run_speed(args.scheme, args.model, args.layers, device=device,
                                       prefill_len=args.prefill_len, decode_batches=args.decode_batches,
                                       compile_model=args.compile,
                                       baselines=speed_baselines(args.scheme, with_torchao),
                                       progress=show_progress(args))
    if measurements:
        print(detail_table(measurements))
        print(speed_table(measurements))
    for impl, error in failures.items():
        print(f"{impl}: failed ({error})")
    return 1 if failures else 0
