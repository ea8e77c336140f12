"""Analytic memory: bytes per parameter by training recipe and optimizer, ZeRO / FSDP sharding, activations per
layer (with and without layer-boundary checkpointing), KV cache, and quantized-weight storage."""
from dataclasses import dataclass

from qtorch.analysis.config import ModelConfig
from qtorch.analysis.params import head_linear, layer_param_counts, param_counts


@dataclass(frozen=True)
class Recipe:
    """Where a training recipe keeps each copy, in bytes per parameter (per element for activations)."""

    name: str
    weight_bytes: int  # the weights forward and backward read
    grad_bytes: int  # gradients, in the weights' dtype
    master_bytes: int  # a separate fp32 master copy the optimizer updates (0: the weights are the masters)
    state_bytes: int  # per optimizer-state element (unless the optimizer fixes its own width)
    activation_bytes: int  # saved activations
    master_grad_bytes: int = 0  # fp32 gradients of the masters, alive during the optimizer step
    description: str = ""


RECIPES: dict[str, Recipe] = {
    "fp32": Recipe("fp32", 4, 4, 0, 4, 4, description="everything fp32"),
    "amp-fp16": Recipe("amp-fp16", 2, 2, 4, 4, 2, master_grad_bytes=4,
                       description="fp16 weights/grads/activations, fp32 masters + Adam (the course's 16N; "
                                   "qtorch.amp.MixedPrecision)"),
    "amp-bf16": Recipe("amp-bf16", 2, 2, 4, 4, 2, master_grad_bytes=4,
                       description="as amp-fp16 in bf16 (no loss scaling)"),
    "torch-amp": Recipe("torch-amp", 4, 4, 0, 4, 2,
                        description="torch.autocast: fp32 weights are the masters, half activations"),
    "pure-bf16": Recipe("pure-bf16", 2, 2, 0, 2, 2, description="weights, grads, optimizer states all bf16"),
}


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    n_states: int  # state tensors per parameter (Adam: exp_avg, exp_avg_sq)
    state_bytes: float | None = None  # fixed width per state element (None: the recipe's)
    description: str = ""


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adam": OptimizerSpec("adam", 2, description="Adam / AdamW: m and v"),
    # bitsandbytes blockwise 8-bit Adam: 1 byte per state element plus an fp32 absmax per 2048-element block.
    "adam-8bit": OptimizerSpec("adam-8bit", 2, 1 + 4 / 2048, "8-bit blockwise-quantized m and v"),
    "sgd-momentum": OptimizerSpec("sgd-momentum", 1, description="SGD with a momentum buffer"),
    "sgd": OptimizerSpec("sgd", 0, description="plain SGD: no state"),
}

ZERO_STAGES = (0, 1, 2, 3)


def _lookup(table: dict, key, what: str):
    if not isinstance(key, str) or key not in table:
        raise ValueError(f"{what}: unknown {key!r}; valid: {', '.join(table)}")
    return table[key]


def get_recipe(recipe) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else _lookup(RECIPES, recipe, "recipe")


def get_optimizer(optimizer) -> OptimizerSpec:
    return optimizer if isinstance(optimizer, OptimizerSpec) else _lookup(OPTIMIZERS, optimizer, "optimizer")


def bytes_per_param(recipe="amp-bf16", optimizer="adam") -> dict[str, float]:
    """Bytes per parameter of each persistent copy (unsharded): weights, gradients, masters, optimizer_states."""
    rec, opt = get_recipe(recipe), get_optimizer(optimizer)
    width = rec.state_bytes if opt.state_bytes is None else opt.state_bytes
    return {"weights": rec.weight_bytes, "gradients": rec.grad_bytes, "masters": rec.master_bytes,
            "optimizer_states": opt.n_states * width}


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")


def model_state_memory(n_params: float, recipe="amp-bf16", optimizer="adam", zero: int = 0,
                       gpus: int = 1) -> dict[str, float]:
    """Per-GPU bytes of weights, gradients, masters and optimizer states under ZeRO stage `zero` over `gpus`.

    Stage 0 (DDP): all replicated. Stage 1: optimizer states and fp32 masters sharded (/G). Stage 2: gradients too.
    Stage 3 (FSDP full shard): weights too (gathered one layer at a time; that transient is not counted here).
    """
    if zero not in ZERO_STAGES:
        raise ValueError(f"zero: expected a ZeRO stage in {ZERO_STAGES}, got {zero!r}")
    _check_int("gpus", gpus, 1)
    if not n_params > 0:
        raise ValueError(f"n_params: expected > 0, got {n_params!r}")
    per = bytes_per_param(recipe, optimizer)
    shard = {"optimizer_states": zero >= 1, "masters": zero >= 1, "gradients": zero >= 2, "weights": zero >= 3}
    return {k: n_params * per[k] / (gpus if shard[k] else 1) for k in per}


# ---- activations ----------------------------------------------------------------------------------------------

NORM_IMPLS = ("fp32-upcast", "fused")
ATTENTION_IMPLS = ("flash", "math")


def layer_activation_rows(cfg: ModelConfig, batch: int, seq: int, act_bytes: int = 2, attention: str = "flash",
                          norm_impl: str = "fp32-upcast") -> list[tuple[str, int]]:
    """Bytes one layer saves for backward (autograd's saved tensors), by tensor; T = b·s tokens, a = act_bytes.

    norms (×2): "fp32-upcast" RMSNorm (qtorch.models.llama: x.float(), rsqrt, fp32 normalized x, output in a)
      saves 4h + 4 + 4h + a·h per token; "fused" (one kernel) a·h + 4 (rstd) + a·h (output); LayerNorm adds 4 (mean).
      The norm's output is the input every following projection saves (counted once).
    attention "flash": q a·nd, k and v a·n_kv·d each (after RoPE), output a·nd (its (B, S, n, d) layout makes the
      input of wo a view of it), log-sum-exp 4n; "math" adds the softmax probabilities a·n·s per token.
    mlp: SwiGLU saves w1 x, silu(w1 x), w3 x, their product (4·a·i); GELU saves w1 x and gelu(w1 x) (2·a·i).
    Residual adds and RoPE (a product with constant tables) save nothing.
    """
    _check_sizes(batch, seq)
    if attention not in ATTENTION_IMPLS:
        raise ValueError(f"attention: expected one of {ATTENTION_IMPLS}, got {attention!r}")
    if norm_impl not in NORM_IMPLS:
        raise ValueError(f"norm_impl: expected one of {NORM_IMPLS}, got {norm_impl!r}")
    t, a, i = batch * seq, act_bytes, cfg.intermediate_size
    rows = [("attention_norm, ffn_norm", 2 * t * _norm_saved_per_token(cfg, a, norm_impl)),
            ("q, k, v (after RoPE)", t * a * (cfg.q_dim + 2 * cfg.kv_dim)),
            ("attention output", t * a * cfg.q_dim),
            ("log-sum-exp (fp32)", t * 4 * cfg.n_heads)]
    if attention == "math":
        rows.append(("softmax probabilities", t * a * cfg.n_heads * seq))
    rows.append(("mlp", t * a * i * (4 if cfg.mlp == "swiglu" else 2)))
    return rows


def _norm_saved_per_token(cfg: ModelConfig, a: int, norm_impl: str) -> int:
    h = cfg.hidden_size
    if cfg.norm == "layernorm":
        return 2 * a * h + 8
    if norm_impl == "fused":
        return 2 * a * h + 4
    return 8 * h + 4 + a * h


def _check_sizes(batch, seq):
    _check_int("batch", batch, 1)
    _check_int("seq", seq, 1)


@dataclass(frozen=True)
class ActivationMemory:
    """Activation bytes of one forward pass kept for backward."""

    per_layer: int  # one layer's saved tensors
    layers: int  # what the N layers keep: N · per_layer, or with checkpointing N layer inputs + one layer
    checkpoints: int  # layer-boundary checkpoints N · T·h·a (0 without checkpointing)
    outside_layers: int  # token ids (8 bytes each), final norm
    checkpointing: str

    @property
    def total(self) -> int:
        return self.layers + self.outside_layers


def activation_memory(cfg: ModelConfig, batch: int, seq: int, act_bytes: int = 2, checkpointing: str = "none",
                      attention: str = "flash", norm_impl: str = "fp32-upcast") -> ActivationMemory:
    """Saved activations of a forward pass (logits and loss excluded: see training_step_peak).

    checkpointing "none": N · per_layer. "layer": the N layer inputs T·h·a (the course's N·b·s·h·2) plus one layer's
    full activations, rebuilt during its backward.
    """
    if checkpointing not in ("none", "layer"):
        raise ValueError(f"checkpointing: expected 'none' or 'layer', got {checkpointing!r}")
    per_layer = sum(b for _, b in layer_activation_rows(cfg, batch, seq, act_bytes, attention, norm_impl))
    t = batch * seq
    outside = 8 * t + t * _norm_saved_per_token(cfg, act_bytes, norm_impl)
    if checkpointing == "layer":
        checkpoints = cfg.n_layers * t * cfg.hidden_size * act_bytes
        return ActivationMemory(per_layer, checkpoints + per_layer, checkpoints, outside, checkpointing)
    return ActivationMemory(per_layer, cfg.n_layers * per_layer, 0, outside, checkpointing)


def rope_table_bytes(cfg: ModelConfig) -> int:
    """qtorch.models.llama's rotary table buffer: (max_seq_len, d/2, 2) float32."""
    return cfg.max_seq_len * cfg.d * 4 if cfg.position == "rope" else 0


def kv_cache_bytes(cfg: ModelConfig, batch: int, context: int, bytes_per_element: float = 2) -> int:
    """KV cache for `context` tokens: 2 (K and V) · N · b · context · n_kv · d · bytes."""
    _check_int("batch", batch, 1)
    _check_int("context", context, 1)
    return round(2 * cfg.n_layers * batch * context * cfg.kv_dim * bytes_per_element)


# ---- quantized weights ------------------------------------------------------------------------------------------

def linear_weight_bytes(n_out: int, k_in: int, weight_format: str = "bf16") -> int:
    """Stored bytes of one (n_out, k_in) linear weight in a format, with its quantization metadata:
    "bf16"/"fp16" 2·N·K; "fp32" 4·N·K; "int8-weight-only" int8 q + fp32 scale + int8 zero per channel;
    "w8a8" int8 q + fp32 scale + int32 column sum per channel; "int{4,8}-g{32,64,128,256}" packed q +
    fp32 scale + int8 zero per group (docs/DESIGN.md op 4)."""
    nk = n_out * k_in
    if weight_format in ("bf16", "fp16"):
        return 2 * nk
    if weight_format == "fp32":
        return 4 * nk
    if weight_format == "int8-weight-only":
        return nk + 5 * n_out
    if weight_format == "w8a8":
        return nk + 8 * n_out
    bits, group = _parse_group_format(weight_format)
    if k_in % group:
        raise ValueError(f"weight_format: group size {group} does not divide K={k_in}")
    return nk * bits // 8 + 5 * n_out * (k_in // group)


WEIGHT_FORMATS = ("bf16", "fp16", "fp32", "int8-weight-only", "w8a8") + tuple(
    f"int{b}-g{g}" for b in (4, 8) for g in (32, 64, 128, 256))


def _parse_group_format(fmt: str) -> tuple[int, int]:
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"weight_format: unknown {fmt!r}; valid: {', '.join(WEIGHT_FORMATS)}")
    bits, group = fmt[3:].split("-g")
    return int(bits), int(group)


def model_weight_bytes(cfg: ModelConfig, weight_format: str = "bf16", quantize_head: bool = False,
                       other_bytes: int = 2) -> dict[str, int]:
    """Weight storage by component when the layers' linear weights use `weight_format` (the head's too when
    quantize_head: an untied LM head or the pooler); embeddings, norms and biases stay at `other_bytes` per
    parameter."""
    linear_weight_bytes(1, 256, weight_format)  # validates the format
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes = [(cfg.q_dim, h), (cfg.kv_dim, h), (cfg.kv_dim, h), (h, cfg.q_dim)]
    shapes += [(i, h), (i, h), (h, i)] if cfg.mlp == "swiglu" else [(i, h), (h, i)]
    linear = sum(linear_weight_bytes(n, k, weight_format) for n, k in shapes)
    per_layer = layer_param_counts(cfg)
    layer_rest = per_layer["attention"] + per_layer["mlp"] + per_layer["norm"] - sum(n * k for n, k in shapes)
    counts = param_counts(cfg)
    head = other_bytes * counts["head"]
    head_shape = head_linear(cfg)
    if quantize_head and head_shape is not None:
        n_out, k_in, has_bias = head_shape
        head = linear_weight_bytes(n_out, k_in, weight_format) + other_bytes * n_out * has_bias
    return {"embedding": other_bytes * counts["embedding"],
            "layers": cfg.n_layers * (linear + other_bytes * layer_rest),
            "final_norm": other_bytes * (counts["norm"] - cfg.n_layers * per_layer["norm"]),
            "head": head}

