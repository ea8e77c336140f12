"""Named ModelConfigs: LLaMA-2 / LLaMA-3 (published configs) and the GPT-3 family (the course's table)."""
from qtorch.analysis.config import ModelConfig


def _llama(name, h, layers, heads, inter, kv=None, vocab=32000, ctx=4096, notes=""):
    return ModelConfig(name=name, vocab_size=vocab, hidden_size=h, n_layers=layers, n_heads=heads, n_kv_heads=kv,
                       intermediate_size=inter, max_seq_len=ctx, notes=notes)


def _gpt3(name, layers, h, heads, d_head, notes=""):
    # GPT-3 (Brown et al. 2020): GPT-2 architecture: learned positions (n_ctx 2048), LayerNorm, biases, GELU MLP of
    # width 4h, LM head tied to the token embedding, vocab 50257 (BPE of GPT-2).
    return ModelConfig(name=name, vocab_size=50257, hidden_size=h, n_layers=layers, n_heads=heads, head_dim=d_head,
                       intermediate_size=4 * h, max_seq_len=2048, mlp="gelu", norm="layernorm", position="learned",
                       tie_embeddings=True, bias=True, notes=notes)


PRESETS: dict[str, ModelConfig] = {
    "llama2-7b": _llama("llama2-7b", 4096, 32, 32, 11008),
    "llama2-13b": _llama("llama2-13b", 5120, 40, 40, 13824),
    "llama2-70b": _llama("llama2-70b", 8192, 80, 64, 28672, kv=8, notes="grouped-query attention, 8 KV heads"),
    "llama3-8b": _llama("llama3-8b", 4096, 32, 32, 14336, kv=8, vocab=128256, ctx=8192,
                        notes="grouped-query attention, 8 KV heads"),
    "gpt3-small": _gpt3("gpt3-small", 12, 768, 12, 64),
    "gpt3-medium": _gpt3("gpt3-medium", 24, 1024, 16, 64),
    "gpt3-large": _gpt3("gpt3-large", 24, 1536, 16, 96),
    "gpt3-xl": _gpt3("gpt3-xl", 24, 2048, 16, 128,
                     notes="table: n_heads 24, d_head 128, but 24·128 = 3072 ≠ d_model 2048; 16 heads used"),
    "gpt3-2.7b": _gpt3("gpt3-2.7b", 32, 2560, 32, 80),
    "gpt3-6.7b": _gpt3("gpt3-6.7b", 32, 4096, 32, 128),
    "gpt3-13b": _gpt3("gpt3-13b", 40, 5120, 40, 128,
                      notes="table: d_model 5140, but n_heads·d_head = 40·128 = 5120; 5120 used"),
    "gpt3-175b": _gpt3("gpt3-175b", 96, 12288, 96, 128),
}

# The course's GPT-3 table columns that are not architecture: nominal n_params, batch size in tokens, learning rate.
GPT3_TABLE: dict[str, dict[str, float]] = {
    "gpt3-small": {"n_params": 125e6, "batch_tokens": 0.5e6, "lr": 6.0e-4},
    "gpt3-medium": {"n_params": 350e6, "batch_tokens": 0.5e6, "lr": 3.0e-4},
    "gpt3-large": {"n_params": 760e6, "batch_tokens": 0.5e6, "lr": 2.5e-4},
    "gpt3-xl": {"n_params": 1.3e9, "batch_tokens": 1e6, "lr": 2.0e-4},
    "gpt3-2.7b": {"n_params": 2.7e9, "batch_tokens": 1e6, "lr": 1.6e-4},
    "gpt3-6.7b": {"n_params": 6.7e9, "batch_tokens": 2e6, "lr": 1.2e-4},
    "gpt3-13b": {"n_params": 13.0e9, "batch_tokens": 2e6, "lr": 1.0e-4},
    "gpt3-175b": {"n_params": 175.0e9, "batch_tokens": 3.2e6, "lr": 0.6e-4},
}


def get_preset(name: str) -> ModelConfig:
    """The preset called name (case-insensitive); ValueError listing the valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a preset name (str), got {type(name).__name__}")
    key = name.lower()
    if key not in PRESETS:
        raise ValueError(f"name: unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[key]
