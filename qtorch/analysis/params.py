"""Exact parameter counts of a ModelConfig, by component."""
from qtorch.analysis.config import ModelConfig


def layer_param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters of one transformer layer, by component.

    attention: h·(n·d) + 2·h·(n_kv·d) + (n·d)·h (+ n·d + 2·n_kv·d + h biases);
    mlp: SwiGLU 3·h·i (+ 2i + h biases), GELU 2·h·i (+ i + h); norms: 2 per layer, h (RMSNorm) or 2h (LayerNorm) each.
    """
    h, i = cfg.hidden_size, cfg.intermediate_size
    attention = h * cfg.q_dim + 2 * h * cfg.kv_dim + cfg.q_dim * h
    if cfg.mlp == "swiglu":
        mlp = 3 * h * i
        mlp_bias = 2 * i + h
    else:
        mlp = 2 * h * i
        mlp_bias = i + h
    if cfg.bias:
        attention += cfg.q_dim + 2 * cfg.kv_dim + h
        mlp += mlp_bias
    return {"attention": attention, "mlp": mlp, "norm": 2 * _norm_params(cfg)}


def _norm_params(cfg: ModelConfig) -> int:
    return cfg.hidden_size * (2 if cfg.norm == "layernorm" else 1)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """All parameters, by component: embedding (v·h, + max_seq_len·h learned positions), attention, mlp, norm
    (2 per layer + the final one), head (v·h unless tied to the embedding). Sum them for the total."""
    per_layer = layer_param_counts(cfg)
    h, v = cfg.hidden_size, cfg.vocab_size
    embedding = v * h + (cfg.max_seq_len * h if cfg.position == "learned" else 0)
    return {
        "embedding": embedding,
        "attention": cfg.n_layers * per_layer["attention"],
        "mlp": cfg.n_layers * per_layer["mlp"],
        "norm": cfg.n_layers * per_layer["norm"] + _norm_params(cfg),
        "head": 0 if cfg.tie_embeddings else v * h,
    }


def count_params(cfg: ModelConfig) -> int:
    """Total parameter count (exact)."""
    return sum(param_counts(cfg).values())


def non_embedding_params(cfg: ModelConfig) -> int:
    """Parameters outside the embedding tables and LM head (the 'N' of the scaling-law papers)."""
    counts = param_counts(cfg)
    return counts["attention"] + counts["mlp"] + counts["norm"]
