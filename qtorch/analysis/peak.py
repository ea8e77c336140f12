"""Predicted peak memory of one training step and of one inference forward, by replaying the allocations and frees
of the step in order (what the CUDA caching allocator's `allocated_bytes.all.peak` measures)."""
from dataclasses import dataclass

from qtorch.analysis.config import ModelConfig
from qtorch.analysis.memory import _parse_group_format, activation_memory, get_optimizer, get_recipe, layer_activation_rows, \
    bytes_per_param, kv_cache_bytes, model_weight_bytes, rope_table_bytes
from qtorch.analysis.params import layer_param_counts, param_counts

OPTIMIZER_IMPLS = ("fused", "foreach", "for-loop")


@dataclass(frozen=True)
class PeakMemory:
    """The replay of one step: `timeline` is (event, live bytes after it); `peak` its maximum."""

    peak: int
    peak_event: str
    static: dict[str, int]  # what is allocated before the step starts
    timeline: tuple[tuple[str, int], ...]


def require_lm_head(cfg: ModelConfig, what: str) -> None:
    """The replays below follow a causal LM's step (logits over the vocabulary); other heads are an error."""
    if cfg.head != "lm":
        raise ValueError(f"cfg: {what} replays a language model's step (logits over the vocabulary); "
                         f"{cfg.name} has head={cfg.head!r}")


class _Replay:
    def __init__(self, static: dict[str, int]):
        self.static = dict(static)
        self.live = sum(static.values())
        self.timeline = [("start", self.live)]

    def __call__(self, event: str, delta: int):
        self.live += delta
        self.timeline.append((event, self.live))

    def result(self) -> PeakMemory:
        event, peak = max(self.timeline, key=lambda e: e[1])
        return PeakMemory(peak, event, self.static, tuple(self.timeline))


def training_step_peak(cfg: ModelConfig, batch: int, seq: int, recipe="amp-bf16", optimizer="adam",
                       optimizer_impl: str = "fused", checkpointing: str = "none", attention: str = "flash",
                       norm_impl: str = "fp32-upcast") -> PeakMemory:
    """Peak bytes of a steady-state training step (optimizer state already allocated, gradients None at start):

        logits = model(tokens)                                  # (b, s, v) in the activation dtype
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward(); optimizer.step(); zero_grad(set_to_none=True)

    With a recipe that has fp32 masters (amp-*), the step is qtorch.amp.MixedPrecision's: half gradients are copied
    into fp32 master gradients (then freed) before optimizer.step(). optimizer_impl: "fused" (no temporaries),
    "foreach" (torch's default on CUDA: Adam allocates one state-sized temporary for sqrt(v)), "for-loop" (one
    parameter's worth).
    """
    require_lm_head(cfg, "training_step_peak")
    if optimizer_impl not in OPTIMIZER_IMPLS:
        raise ValueError(f"optimizer_impl: expected one of {OPTIMIZER_IMPLS}, got {optimizer_impl!r}")
    rec, opt = get_recipe(recipe), get_optimizer(optimizer)
    counts, per_layer_params = param_counts(cfg), layer_param_counts(cfg)
    n_params = sum(counts.values())
    per = bytes_per_param(rec, opt)
    g, a = rec.grad_bytes, rec.activation_bytes
    t, v, h, i = batch * seq, cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size
    acts = activation_memory(cfg, batch, seq, a, checkpointing, attention, norm_impl)
    layer_act = sum(b for _, b in layer_activation_rows(cfg, batch, seq, a, attention, norm_impl))
    static = {k: round(n_params * per[k]) for k in ("weights", "masters", "optimizer_states")}
    replay = _Replay({**static, "buffers": rope_table_bytes(cfg)})

    # forward: activations, then the loss on fp32 logits (the fp32 copy lives until cross_entropy returns)
    kept_per_layer = t * h * a if checkpointing == "layer" else layer_act  # what each layer holds until backward
    replay("forward: saved activations", acts.outside_layers + cfg.n_layers * kept_per_layer)
    replay("forward: logits", t * v * a)
    if a != 4:
        replay("forward: fp32 logits", t * v * 4)
        replay("forward: free half logits", -t * v * a)
    replay("forward: log-softmax", t * v * 4)
    replay("forward: free fp32 logits", -t * v * 4)
    # backward of the loss: nll grad, log-softmax grad, (cast back to the activation dtype)
    replay("backward: nll grad", t * v * 4)
    replay("backward: log-softmax grad", t * v * 4)
    replay("backward: free log-softmax", -2 * t * v * 4)
    if a != 4:
        replay("backward: logits grad cast", t * v * a)
        replay("backward: free fp32 logits grad", -t * v * 4)
    # the head's dX is the running residual-stream gradient (T, h) until the embedding
    replay("backward: head", counts["head"] * g + t * h * a)
    replay("backward: free logits grad", -t * v * a)
    final_norm_params = counts["norm"] - cfg.n_layers * per_layer_params["norm"]
    replay("backward: final norm", final_norm_params * g - (acts.outside_layers - 8 * t))
    # per layer, the MLP's backward is the high point: dW2 and the gradients of the w2 input, silu(w1 x) and w3 x
    # are alive (SwiGLU; GELU: of the w2 input and w1 x) while the saved w2 input is already freed
    down_proj = h * i * g
    mlp_grads = t * i * a * (2 if cfg.mlp == "swiglu" else 1)
    layer_grads = sum(per_layer_params.values()) * g
    for layer in range(cfg.n_layers, 0, -1):
        if checkpointing == "layer":
            replay(f"backward: layer {layer - 1} recompute", layer_act)
        replay(f"backward: layer {layer - 1} mlp", down_proj + mlp_grads)
        checkpoint = kept_per_layer if checkpointing == "layer" else 0
        replay(f"backward: layer {layer - 1} done", layer_grads - down_proj - mlp_grads - layer_act - checkpoint)
    replay("backward: embedding", counts["embedding"] * g - t * h * a - 8 * t)
    # optimizer step
    if rec.master_bytes:
        replay("step: fp32 master grads", n_params * rec.master_grad_bytes)
        replay("step: free half grads", -n_params * g)
    state_width = per["optimizer_states"] / opt.n_states if opt.n_states else 0
    largest = max(v * h, i * h, cfg.q_dim * h)  # the largest parameter tensor
    # foreach Adam: sqrt(v) for all parameters at once; for-loop: sqrt(v) and sqrt(v)/c of one parameter
    temp = {"fused": 0, "foreach": n_params * state_width, "for-loop": 2 * largest * state_width}[optimizer_impl]
    replay("step: optimizer temporaries", round(temp))
    return replay.result()


def weight_only_workspace(weight_format: str, tokens: int, n_out: int, k_in: int, act_bytes: int = 2) -> int:
    """Bytes a weight-only quantized linear allocates while it runs on `tokens` rows: from the routing's dequantize
    threshold on (qtorch.ops.weight_only.mixed_max_m for the tiled layout, on the current CUDA device as the layer
    would run there; qtorch.ops.weight_only.DEQUANT_MIN_M for the row-major one), the whole weight dequantized to the
    activation dtype (N·K·a) before cuBLAS; 0 below it and for the other formats."""
    if weight_format == "int8-weight-only":
        bits, group = 8, k_in
    elif weight_format.startswith("int"):
        bits, group = _parse_group_format(weight_format)
    else:
        return 0
    from qtorch.quant.layout import storage_layout
    from qtorch.ops.weight_only import DEQUANT_MIN_M, mixed_max_m
    from qtorch.quant.layout import LAYOUT_TILED

    if storage_layout(bits, k_in, group) == LAYOUT_TILED:
        dequantizes = tokens > mixed_max_m(bits, None, k_in, group)
    else:
        dequantizes = tokens >= DEQUANT_MIN_M
    return n_out * k_in * act_bytes if dequantizes else 0


def linear_workspace(weight_format: str, tokens: int, n_out: int, k_in: int, act_bytes: int = 2) -> int:
    """Bytes a quantized linear allocates besides its output while it runs on `tokens` rows: W8A8 quantizes x per
    token first (qtorch::quantize_per_token: x_q (T, K) int8, scale (T,) fp32, zero point (T,) int32: T(K + 8)),
    alive while the int8 GEMM writes y; the weight-only formats as weight_only_workspace; float weights none."""
    if weight_format == "w8a8":
        return tokens * (k_in + 8)
    return weight_only_workspace(weight_format, tokens, n_out, k_in, act_bytes)


def inference_peak(cfg: ModelConfig, batch: int, seq: int, weight_format: str = "bf16", quantize_head: bool = False,
                   act_bytes: int = 2, kv_cache_len: int = 0) -> PeakMemory:
    """Peak bytes of one no-grad forward (prefill) over T = b × s tokens: weights (in weight_format) + KV cache of
    kv_cache_len positions (if set up) + the largest transient, with the workspace W(N, K) of the quantized linear
    running in it (linear_workspace: W8A8's per-token quantized x; the weight-only weight dequantized where the
    routing does so at this T; 0 for float weights):
      fp32 RMSNorm: x, fp32 copy, x², normalized: T(ha + 12h);
      SwiGLU MLP on x, h, normed h (T·3ha): w3 beside silu(w1 x) T(2ia) + W(i, h); silu(w1 x) ⊙ w3 x T(3ia);
        w2 on the product T(ia + ha) + W(h, i)  (GELU: w1 T(ia) + W(i, h); gelu T(2ia); w2 as SwiGLU's);
      head: x, normed x, logits T(2ha + va) + W(v, h) when the head is quantized."""
    require_lm_head(cfg, "inference_peak")
    weights = model_weight_bytes(cfg, weight_format, quantize_head, other_bytes=act_bytes)
    static = {"weights": sum(weights.values()), "buffers": rope_table_bytes(cfg)}
    if kv_cache_len:
        static["kv_cache"] = kv_cache_bytes(cfg, batch, kv_cache_len, act_bytes)
    replay = _Replay(static)
    t, a, h, i, v = batch * seq, act_bytes, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size

    def workspace(n, k):
        return linear_workspace(weight_format, t, n, k, a)

    blocks = 3 * t * h * a  # x, h, normed h
    if cfg.mlp == "swiglu":
        mlp = [("mlp w3", blocks + 2 * t * i * a + workspace(i, h)),
               ("mlp silu(w1 x) * w3 x", blocks + 3 * t * i * a)]
    else:
        mlp = [("mlp w1", blocks + t * i * a + workspace(i, h)), ("mlp gelu", blocks + 2 * t * i * a)]
    mlp.append(("mlp w2", blocks + t * (i + h) * a + workspace(h, i)))
    head = t * (2 * h * a + v * a) + (workspace(v, h) if quantize_head else 0)
    for name, transient in (("norm (fp32)", t * (h * a + 12 * h)), *mlp, ("head", head)):
        replay(f"forward: {name}", transient)
        replay(f"forward: {name} done", -transient)
    return replay.result()
