"""Analytic forward and training FLOPs of a ModelConfig, row by row after the course table, and MFU."""
from dataclasses import dataclass

from qtorch.analysis.config import ModelConfig
from qtorch.analysis.conventions import FlopConventions, get_conventions

CATEGORIES = ("embedding", "normalization", "residual", "attention", "mlp", "head")


@dataclass(frozen=True)
class FlopRow:
    """One term of the forward count: `flops` is the total over all its `count` occurrences (e.g. N layers)."""

    name: str  # e.g. "attention.wq"
    category: str  # one of CATEGORIES
    formula: str  # per occurrence, in the course's symbols
    count: int  # occurrences (N for per-layer rows)
    flops: int  # total forward FLOPs of this row
    matmul: bool  # a matmul-class term (what FlopCounterMode counts)
    in_layers: bool  # inside the N transformer layers (recomputed by layer checkpointing)


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward FLOPs of one pass over `batch` sequences of `seq` new tokens (after `context` cached tokens)."""

    config: ModelConfig
    conventions: FlopConventions
    batch: int
    seq: int
    context: int
    rows: tuple[FlopRow, ...]

    @property
    def total(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def matmul_total(self) -> int:
        """The matmul-class part (linear layers, QKᵀ, PV, embedding-as-matmul)."""
        return sum(r.flops for r in self.rows if r.matmul)

    @property
    def elementwise_total(self) -> int:
        return self.total - self.matmul_total

    def by_category(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for r in self.rows:
            out[r.category] += r.flops
        return out

    @property
    def layer_total(self) -> int:
        """FLOPs inside the N transformer layers (what layer-boundary checkpointing recomputes)."""
        return sum(r.flops for r in self.rows if r.in_layers)


def _check_sizes(batch, seq, context):
    for name, v, low in (("batch", batch, 1), ("seq", seq, 1), ("context", context, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {v!r}")


def _times(k: int, term: str) -> str:
    """'3bsi', or 'bsi' when k == 1."""
    return term if k == 1 else f"{k}{term}"


def attention_pairs(seq: int, context: int, causal: bool) -> int:
    """(query, key) pairs per sequence and head: s queries after `context` cached keys.

    Causal: Σ_{j=1..s} (context + j) = s·context + s(s+1)/2 (top-left-aligned mask over the new tokens);
    dense: s·(context + s).
    """
    if causal:
        return seq * context + seq * (seq + 1) // 2
    return seq * (context + seq)


def forward_flops(cfg: ModelConfig, batch: int, seq: int, conventions="qtorch", context: int = 0) -> FlopBreakdown:
    """Forward FLOPs, by component, for b = batch sequences of s = seq tokens (attending to `context` cached tokens).

    Per layer (course table, 2 FLOPs per multiply-accumulate):
      wq 2bsh·nd; wk, wv 2bsh·n_kv·d each (course: 2bsh² each); RoPE 3bs(n + n_kv)d (course: 3bsnd);
      QKᵀ 2·b·n·P·d and PV 2·b·n·P·d with P = attention_pairs (course: P = s², giving 2bs²nd each);
      softmax 3·b·n·P (course 3bs²n); wo 2bs·nd·h; residual bsh (×2);
      SwiGLU: w1, w3 2bshi each, Swish 4bsi, product bsi, w2 2bshi (GELU MLP: 2bshi, 8bsi, 2bshi);
      RMSNorm 4bsh + 2bs (×2, plus the final norm, or with post-LN the embedding norm);
      head 2bshv (LM) or pooler 2bh² + bh bias + tanh on the first token; embedding 0 (gather) or 2bshv (matmul),
      learned positions and token types one add of bsh each. An encoder (cfg.causal False) attends densely.
    """
    conv = get_conventions(conventions)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
    _check_sizes(batch, seq, context)
    b, s, h, v, i, N = batch, seq, cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size, cfg.n_layers
    n, n_kv, d = cfg.n_heads, cfg.kv_heads, cfg.d
    t = b * s  # tokens
    kv_dim = cfg.kv_dim if conv.kv_proj == "gqa" else cfg.q_dim
    kv_sym = "n_kv·d" if conv.kv_proj == "gqa" and n_kv != n else "nd"
    causal = conv.causal and cfg.causal
    pairs = attention_pairs(s, context, causal)
    if causal:
        pair_sym = "(s·c + s(s+1)/2)" if context else "s(s+1)/2"
    else:
        pair_sym = "s(c+s)" if context else "s²"
    rows: list[FlopRow] = []

    def add(name, category, formula, count, per, matmul=False, in_layers=True):
        if per:
            rows.append(FlopRow(name, category, formula, count, count * per, matmul, in_layers))

    if conv.embedding == "matmul":
        add("tok_embeddings", "embedding", "2bshv", 1, 2 * t * h * v, matmul=True, in_layers=False)
        add("token_type_embeddings", "embedding", "2bsh·T", 1, 2 * t * h * cfg.token_types, matmul=True,
            in_layers=False)
    if cfg.position == "learned":
        add("pos_embeddings (add)", "embedding", _times(conv.residual, "bsh"), 1, conv.residual * t * h,
            in_layers=False)
    if cfg.token_types:
        add("token_type_embeddings (add)", "embedding", _times(conv.residual, "bsh"), 1, conv.residual * t * h,
            in_layers=False)

    def bias(linears: str) -> int:  # 1: count the bias adds of these linears
        return int(conv.bias_adds and cfg.has_bias(linears))

    add("attention.wq", "attention", "2bsh·nd", N, 2 * t * h * cfg.q_dim, matmul=True)
    add("attention.wk", "attention", f"2bsh·{kv_sym}", N, 2 * t * h * kv_dim, matmul=True)
    add("attention.wv", "attention", f"2bsh·{kv_sym}", N, 2 * t * h * kv_dim, matmul=True)
    add("attention.qkv_bias", "attention", "bs(nd + 2·n_kv·d)", N, (t * (cfg.q_dim + 2 * cfg.kv_dim)) * bias("qkv"))
    if cfg.position == "rope" and conv.rope != "none":
        heads, sym = (n + n_kv, "(n + n_kv)") if conv.rope == "qk" else (n, "n")
        add("attention.rope", "attention", _times(conv.rope_flops, f"bs{sym}d"), N, conv.rope_flops * t * heads * d)
    add("attention.qk", "attention", f"2b·n·{pair_sym}·d", N, 2 * b * n * pairs * d, matmul=True)
    add("attention.softmax", "attention", _times(conv.softmax, f"b·n·{pair_sym}"), N, conv.softmax * b * n * pairs)
    add("attention.pv", "attention", f"2b·n·{pair_sym}·d", N, 2 * b * n * pairs * d, matmul=True)
    add("attention.wo", "attention", "2bs·nd·h", N, 2 * t * cfg.q_dim * h, matmul=True)
    add("attention.wo_bias", "attention", "bsh", N, t * h * bias("out"))
    add("residual", "residual", _times(conv.residual, "bsh"), 2 * N, conv.residual * t * h)
    if cfg.mlp == "swiglu":
        add("feed_forward.w1 (gate)", "mlp", "2bshi", N, 2 * t * h * i, matmul=True)
        add("feed_forward.w3 (up)", "mlp", "2bshi", N, 2 * t * h * i, matmul=True)
        add("feed_forward.swish", "mlp", _times(conv.swish, "bsi"), N, conv.swish * t * i)
        add("feed_forward.product", "mlp", _times(conv.glu_product, "bsi"), N, conv.glu_product * t * i)
        add("feed_forward.bias", "mlp", "bs(2i + h)", N, t * (2 * i + h) * bias("mlp"))
    else:
        add("feed_forward.w1 (up)", "mlp", "2bshi", N, 2 * t * h * i, matmul=True)
        add("feed_forward.gelu", "mlp", _times(conv.gelu, "bsi"), N, conv.gelu * t * i)
        add("feed_forward.bias", "mlp", "bs(i + h)", N, t * (i + h) * bias("mlp"))
    add("feed_forward.w2 (down)", "mlp", "2bsih", N, 2 * t * i * h, matmul=True)
    if conv.norm:
        per_token = (4 * h + 2, "4bsh + 2bs") if cfg.norm == "rmsnorm" else (7 * h + 3, "7bsh + 3bs")
        add(f"attention_norm, ffn_norm ({cfg.norm})", "normalization", per_token[1], 2 * N, per_token[0] * t)
        outer = "final" if cfg.norm_position == "pre" else "embedding"
        add(f"norm ({outer} {cfg.norm})", "normalization", per_token[1], 1, per_token[0] * t, in_layers=False)
    if cfg.head == "lm":
        add("output (head)", "head", "2bshv", 1, 2 * t * h * v, matmul=True, in_layers=False)
    elif cfg.head == "pooler":  # on the first token of each sequence
        add("pooler.dense", "head", "2bh²", 1, 2 * b * h * h, matmul=True, in_layers=False)
        add("pooler.bias", "head", "bh", 1, b * h * int(conv.bias_adds), in_layers=False)
        add("pooler.tanh", "head", _times(conv.tanh, "bh"), 1, conv.tanh * b * h, in_layers=False)
    return FlopBreakdown(cfg, conv, batch, seq, context, tuple(rows))


@dataclass(frozen=True)
class TrainingFlops:
    """FLOPs of one training step (forward + backward [+ recomputation])."""

    forward: int
    backward: int  # backward_factor × forward
    recompute: int  # forward work repeated by activation checkpointing
    breakdown: FlopBreakdown

    @property
    def model_flops(self) -> int:
        """Forward + backward: the useful work (what MFU counts)."""
        return self.forward + self.backward

    @property
    def hardware_flops(self) -> int:
        """Model FLOPs plus recomputation (what HFU counts)."""
        return self.model_flops + self.recompute

    def by_category(self) -> dict[str, int]:
        """Model FLOPs (forward + backward) per category: (1 + backward_factor) × the forward share."""
        factor = 1 + self.breakdown.conventions.backward_factor
        return {k: round(factor * v) for k, v in self.breakdown.by_category().items()}


CHECKPOINTING = ("none", "layer", "attention")


def training_flops(cfg: ModelConfig, batch: int, seq: int, conventions="qtorch",
                   checkpointing: str = "none") -> TrainingFlops:
    """Training-step FLOPs = forward + backward_factor·forward (2: one matmul for dX, one for dW) + recomputation.

    checkpointing: "none"; "layer" (activations kept at layer boundaries: every layer's forward runs twice);
    "attention" (selective: only QKᵀ, softmax and PV are recomputed).
    """
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing: expected one of {', '.join(CHECKPOINTING)}, got {checkpointing!r}")
    fwd = forward_flops(cfg, batch, seq, conventions)
    if checkpointing == "layer":
        recompute = fwd.layer_total
    elif checkpointing == "attention":
        recompute = sum(r.flops for r in fwd.rows if r.name in ("attention.qk", "attention.softmax", "attention.pv"))
    else:
        recompute = 0
    return TrainingFlops(fwd.total, round(fwd.conventions.backward_factor * fwd.total), recompute, fwd)


# Dense (no sparsity) peak tensor-core throughput, TFLOP/s (int8: TOP/s), from NVIDIA datasheets (SXM parts).
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "fp8": 1978.9, "int8": 1978.9},
    "h100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "fp8": 1978.9, "int8": 1978.9},
    "a100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5, "int8": 624.0},
    "l40s": {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6, "fp8": 733.0, "int8": 733.0},
}


def peak_flops(gpu: str, dtype: str = "bf16") -> float:
    """Peak FLOP/s of one GPU for dtype (dense)."""
    if gpu not in GPU_PEAK_TFLOPS:
        raise ValueError(f"gpu: unknown {gpu!r}; valid: {', '.join(GPU_PEAK_TFLOPS)} (or pass a peak in FLOP/s)")
    peaks = GPU_PEAK_TFLOPS[gpu]
    if dtype not in peaks:
        raise ValueError(f"dtype: {gpu} has no {dtype!r} peak; valid: {', '.join(peaks)}")
    return peaks[dtype] * 1e12


def mfu(flops_per_step: float, step_time_s: float, peak_flops_per_gpu: float, n_gpus: int = 1) -> float:
    """Model FLOPs utilization = flops_per_step / (step_time_s · n_gpus · peak_flops_per_gpu).

    Pass TrainingFlops.model_flops for MFU, .hardware_flops for HFU."""
    for name, value in (("step_time_s", step_time_s), ("peak_flops_per_gpu", peak_flops_per_gpu)):
        if not value > 0:
            raise ValueError(f"{name}: expected > 0, got {value!r}")
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ValueError(f"n_gpus: expected an int >= 1, got {n_gpus!r}")
    return flops_per_step / (step_time_s * n_gpus * peak_flops_per_gpu)
