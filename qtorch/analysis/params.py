"""Exact parameter counts of a ModelConfig, by component."""
from qtorch.analysis.config import ModelConfig


def layer_param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters of one transformer layer, by component.

    attention: h·(n·d) + 2·h·(n_kv·d) + (n·d)·h (+ n·d + 2·n_kv·d q/k/v biases, + h output bias);
    mlp: SwiGLU 3·h·i (+ 2i + h biases), GELU 2·h·i (+ i + h); norms: 2 per layer, h (RMSNorm) or 2h (LayerNorm) each.
    """
    h, i = cfg.hidden_size, cfg.intermediate_size
    attention = h * cfg.q_dim + 2 * h * cfg.kv_dim + cfg.q_dim * h
    attention += (cfg.q_dim + 2 * cfg.kv_dim) * cfg.has_bias("qkv") + h * cfg.has_bias("out")
    if cfg.mlp == "swiglu":
        mlp, mlp_bias = 3 * h * i, 2 * i + h
    else:
        mlp, mlp_bias = 2 * h * i, i + h
    mlp += mlp_bias * cfg.has_bias("mlp")
    return {"attention": attention, "mlp": mlp, "norm": 2 * _norm_params(cfg)}


def _norm_params(cfg: ModelConfig) -> int:
    return cfg.hidden_size * (2 if cfg.norm == "layernorm" else 1)


def head_linear(cfg: ModelConfig) -> tuple[int, int, bool] | None:
    """(n_out, k_in, has bias) of the head's linear layer: the LM head (v, h) untied, the pooler (h, h) with a
    bias; None without one (a tied LM head, or no head)."""
    h = cfg.hidden_size
    if cfg.head == "lm" and not cfg.tie_embeddings:
        return cfg.vocab_size, h, False
    if cfg.head == "pooler":
        return h, h, True
    return None


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """All parameters, by component: embedding (v·h, + max_seq_len·h learned positions, + token_types·h),
    attention, mlp, norm (2 per layer + the final one, or with post-LN the embedding norm), head (LM head v·h
    unless tied, pooler h·h + h). Sum them for the total."""
    per_layer = layer_param_counts(cfg)
    h, v = cfg.hidden_size, cfg.vocab_size
    embedding = v * h + (cfg.max_seq_len * h if cfg.position == "learned" else 0) + cfg.token_types * h
    head = head_linear(cfg)
    return {
        "embedding": embedding,
        "attention": cfg.n_layers * per_layer["attention"],
        "mlp": cfg.n_layers * per_layer["mlp"],
        "norm": cfg.n_layers * per_layer["norm"] + _norm_params(cfg),
        "head": 0 if head is None else head[0] * head[1] + head[0] * head[2],
    }


def count_params(cfg: ModelConfig) -> int:
    """Total parameter count (exact)."""
    return sum(param_counts(cfg).values())


def non_embedding_params(cfg: ModelConfig) -> int:
    """Parameters outside the embedding tables and LM head (the 'N' of the scaling-law papers)."""
    counts = param_counts(cfg)
    return counts["attention"] + counts["mlp"] + counts["norm"]
