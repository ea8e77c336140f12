"""Prefill and decode speed of a LLaMA-shaped model: bf16 vs qtorch schemes vs baselines, side by side in one process.

Per implementation (bf16, qtorch_<scheme>, and the baselines the caller passes: torchao's configs and FP8 row-wise
from the benchmark-side package qtorch_baselines; this library module never imports torchao), on a model of the
preset's width with `layers` of its transformer blocks (seeded random weights, initialised on the device):
  prefill  one forward of (1, prefill_len) tokens, no KV cache (causal flash attention)   -> tokens/s = len / t
  decode   one step of (B, 1) tokens at position `decode_pos` of a static KV cache of
           `decode_cache` positions, B in `decode_batches`                              -> tokens/s = B / t
Times are GPU times: medians over repeats of CUDA-event-timed loops started behind a GPU sleep (cuda_median_us), after
warm-up; with compile=True each forward is torch.compile(mode="reduce-overhead", fullgraph=True) (CUDA graphs), timed
after compilation.
Depth: compile time grows with depth, so `layers` (default 4) blocks are timed and the full depth is projected:
  t_full = t_fixed + (n_full / layers) (t_layers − t_fixed),
where t_fixed is the same forward with no blocks (embedding, final norm, head), timed eagerly inside one CUDA graph.
Both measured times are kept with the projection.
"""
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

import qtorch
from qtorch.eval.schemes import get_scheme
from qtorch.models.llama import Llama, get_config, rope_cache


@contextlib.contextmanager
def inductor_settings():
    """The part of torchao's recommended inductor settings that matters for its int8 path (fuse int_mm with the
    scale multiply), for every implementation alike; coordinate-descent tuning stays off (compile-time budget)."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(force_fuse_int_mm_with_mul=True):
        yield


@torch.no_grad()
def build_model(preset: str, layers: int, device, dtype=torch.bfloat16, seed: int = 0) -> Llama:
    """The preset with `layers` blocks, weights N(0, 0.02²) (norms 1) drawn on the device from a seeded generator."""
    cfg = get_config(preset)
    if layers < 1 or layers > cfg.n_layers:
        raise ValueError(f"layers: expected 1..{cfg.n_layers} for {preset}, got {layers}")
    from dataclasses import replace

    cfg = replace(cfg, n_layers=layers)
    with torch.device("meta"):
        model = Llama(cfg)
    model = model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.fill_(1.0)
        else:
            p.copy_(torch.randn(p.shape, generator=gen, device=device, dtype=torch.float32) * 0.02)
    model.freqs = rope_cache(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta).to(device)
    return model.to(dtype).eval()


def quantize_impl(model: nn.Module, impl: str, baselines: dict | None = None) -> None:
    """Quantize every linear layer (the head too) in place for `impl`: bf16 (nothing), qtorch_<scheme>, or a baseline
    of `baselines` ({scheme: {impl: quantize(model)}}, see run_speed)."""
    if impl == "bf16":
        return
    if impl.startswith("qtorch_"):
        qtorch.quantize_(model, get_scheme(impl.split("_", 1)[1]).config)  # the registry's config
        return
    for impls in (baselines or {}).values():
        if impl in impls:
            impls[impl](model)
            return
    raise ValueError(f"impl: unknown {impl!r}")


SLEEP_CYCLES_PER_S = 2.0e9  # about the SM clock of a Hopper GPU; a slower clock only lengthens the head start


def cuda_median_us(fn: Callable[[], object], iters: int, repeats: int = 5, warmup: int = 3) -> float:
    """GPU time of one call in µs: the median over `repeats` of the mean of `iters` back-to-back calls (CUDA events).

    Each loop starts behind a GPU sleep long enough for the CPU to enqueue all of its calls, so the GPU runs them
    back to back and the time is the GPU's, not the CPU's launch overhead (a thin slice of a model would otherwise
    time the Python side; in a full-depth model that overhead overlaps the GPU work).
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    head_start = min(1.5 * iters * (time.perf_counter() - t0), 0.5)  # s, >= the CPU time to enqueue the loop
    samples = []
    for _ in range(repeats):
        torch.cuda._sleep(int(head_start * SLEEP_CYCLES_PER_S))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / iters)
    return statistics.median(samples)


def graphed(fn: Callable[[], object]) -> Callable[[], object]:
    """Capture fn (eager) in one CUDA graph; the returned callable replays it."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


@contextlib.contextmanager
def without_blocks(model: Llama):
    """The model with no transformer blocks (embedding -> final norm -> head), restored on exit."""
    blocks = model.layers
    model.layers = nn.ModuleList()
    try:
        yield model
    finally:
        model.layers = blocks


def drop_kv_cache(model: Llama) -> None:
    for layer in model.layers:
        layer.attention.kv_cache = None
    model.cache_len = 0


def project_depth(slice_us: float, fixed_us: float, layers: int, full_depth: int) -> float:
    """t_full = t_fixed + (full_depth / layers) (t_slice − t_fixed): the blocks are identical, so their time scales
    with their count; the embedding, final norm and head (t_fixed) are there once."""
    if not slice_us > fixed_us:
        raise ValueError(f"slice_us: the forward with {layers} blocks ({slice_us:,.1f} us) must take longer than the "
                         f"one without blocks (fixed_us = {fixed_us:,.1f} us); no projection to {full_depth} blocks "
                         "from these")
    return fixed_us + full_depth / layers * (slice_us - fixed_us)


@dataclass
class Measurement:
    """One (impl, phase, batch) timing: the measured slice, the fixed part and the projected full depth."""

    impl: str
    phase: str  # "prefill" or "decode"
    batch: int
    tokens: int  # tokens produced per forward (prefill: batch·len; decode: batch)
    slice_us: float  # forward with `layers` blocks
    fixed_us: float  # forward with no blocks
    full_us: float  # projected forward with the preset's depth
    compile_s: float  # first call of the compiled forward (0 when eager)
    extra: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / (self.full_us * 1e-6)


def _forward_fn(model, tokens, input_pos, compile_model: bool):
    if compile_model:
        compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False)

        def step():
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: earlier outputs may be overwritten
            return compiled(tokens, input_pos)
        return step
    return lambda: model(tokens, input_pos)


def cudagraph_skips() -> int:
    """How many compiled graphs inductor ran without CUDA graphs so far (it logs why)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["cudagraph_skips"])


def time_forward(model: Llama, tokens: torch.Tensor, input_pos, compile_model: bool, iters: int):
    """(median µs, compile seconds) of model(tokens, input_pos)."""
    fn = _forward_fn(model, tokens, input_pos, compile_model)
    compile_s = 0.0
    if compile_model:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
    return cuda_median_us(fn, iters), compile_s


def time_fixed(model: Llama, tokens: torch.Tensor, input_pos, iters: int) -> tuple[float, bool]:
    """(median µs, captured) of the block-less forward: eager inside one CUDA graph, or plain eager (captured False)
    when the implementation cannot be captured."""
    with without_blocks(model):
        forward = lambda: model(tokens, input_pos)  # noqa: E731
        try:
            replay = graphed(forward)
        except RuntimeError as exc:
            print(f"bench: the block-less forward could not be captured in a CUDA graph ({str(exc).splitlines()[0]});"
                  " timing it eagerly")
            torch.cuda.synchronize()
            return cuda_median_us(forward, iters), False
        return cuda_median_us(replay, iters), True


@torch.no_grad()
def measure_impl(impl: str, preset: str, layers: int, device, *, prefill_len: int, decode_batches, decode_pos: int,
                 decode_cache: int, compile_model: bool, seed: int = 0, baselines: dict | None = None,
                 out: list[Measurement] | None = None) -> list[Measurement]:
    """Build, quantize and time one implementation: prefill, then decode at each batch size. Each measurement is
    appended to `out` (returned) as soon as it is taken, so a phase that raises keeps the earlier phases' numbers."""
    full_depth = get_config(preset).n_layers
    model = build_model(preset, layers, device, seed=seed)
    quantize_impl(model, impl, baselines)
    vocab = model.config.vocab_size
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    out = [] if out is None else out

    def project(slice_us, fixed_us, captured):
        if compile_model and not captured:
            raise RuntimeError(f"{impl}: the forward without blocks could not be captured in a CUDA graph, so its "
                               "eager time cannot be subtracted from the compiled slice (no projection)")
        return project_depth(slice_us, fixed_us, layers, full_depth)

    skips = cudagraph_skips()
    tokens = torch.randint(0, vocab, (1, prefill_len), generator=gen, device=device)  # (1, S)
    slice_us, compile_s = time_forward(model, tokens, None, compile_model, iters=5)
    fixed_us, captured = time_fixed(model, tokens, None, iters=5)
    out.append(Measurement(impl, "prefill", 1, prefill_len, slice_us, fixed_us, project(slice_us, fixed_us, captured),
                           compile_s, {"cudagraph_skips": cudagraph_skips() - skips, "fixed_graphed": captured}))
    for batch in decode_batches:
        skips = cudagraph_skips()
        model.setup_caches(batch, decode_cache, dtype=torch.bfloat16, device=device)  # (a quantized head has no
        # .weight for setup_caches to take them from)
        step = torch.randint(0, vocab, (batch, 1), generator=gen, device=device)  # (B, 1)
        pos = torch.tensor([decode_pos], device=device)  # (1,)
        slice_us, compile_s = time_forward(model, step, pos, compile_model, iters=50)
        fixed_us, captured = time_fixed(model, step, pos, iters=50)
        out.append(Measurement(impl, "decode", batch, batch, slice_us, fixed_us, project(slice_us, fixed_us, captured),
                               compile_s, {"cudagraph_skips": cudagraph_skips() - skips, "fixed_graphed": captured}))
        drop_kv_cache(model)
    del model
    torch.cuda.empty_cache()
    if compile_model:
        torch._dynamo.reset()  # free the CUDA graphs and compiled code of this implementation
    return out


def implementations(schemes, baselines: dict | None = None) -> list[str]:
    """bf16, then per scheme qtorch's implementation followed by that scheme's baselines, so that a run cut short
    still holds comparable pairs."""
    impls = ["bf16"]
    for s in schemes:
        impls += [f"qtorch_{s}", *(baselines or {}).get(s, {})]
    return impls


def run_speed(schemes, preset: str = "llama2-7b-shaped", layers: int = 4, *, device="cuda", prefill_len: int = 2048,
              decode_batches=(1, 16), decode_pos: int = 128, decode_cache: int = 256, compile_model: bool = True,
              baselines: dict | None = None, progress: bool = True,
              on_impl_done: Callable[[list[Measurement]], None] | None = None,
              ) -> tuple[list[Measurement], dict[str, str]]:
    """Every implementation of `schemes` (and bf16) measured in this process, one after the other; `baselines`
    ({scheme: {impl name: quantize(model) in place}}, e.g. qtorch_baselines.speed.speed_baselines) run after their
    scheme's qtorch implementation.

    Returns (measurements, failures): an implementation that raises is reported in failures (impl -> error line),
    the phases it measured before are kept, and the others still run. on_impl_done(measurements so far) is called after each implementation (to save
    partial results of a long run).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device: the speed benchmark needs a CUDA device, got {device}")
    if not 0 <= decode_pos < decode_cache:
        raise ValueError(f"decode_pos: expected a position in [0, {decode_cache}), got {decode_pos}")
    impls = implementations(schemes, baselines)
    out, failures = [], {}
    with inductor_settings():
        for impl in tqdm(impls, desc="bench", unit="impl", disable=not progress):
            try:
                measure_impl(impl, preset, layers, device, prefill_len=prefill_len, decode_batches=decode_batches,
                             decode_pos=decode_pos, decode_cache=decode_cache, compile_model=compile_model, baselines=baselines,
                             out=out)
            except Exception as exc:  # one broken baseline must not lose the others' numbers
                failures[impl] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                print(f"bench: {impl} failed: {failures[impl]}")
                torch._dynamo.reset()
                torch.cuda.empty_cache()
            if on_impl_done is not None:
                on_impl_done(out)
    return out, failures
