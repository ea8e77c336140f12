"""ModelConfig: the architecture description every analytic formula reads, and its converters
(from a qtorch LlamaConfig, from a Hugging Face config)."""
from dataclasses import dataclass, field, fields, replace

from qtorch.analysis.hf_config import architecture_fields, check_architecture, hf_config_dict

_MLP_KINDS = ("swiglu", "gelu")
_NORM_KINDS = ("rmsnorm", "layernorm")
_NORM_POSITIONS = ("pre", "post")
_POSITION_KINDS = ("rope", "learned")
_HEAD_KINDS = ("lm", "pooler", "none")
# ModelConfig.bias -> the linear layers that have a bias: q/k/v projections, attention output, MLP.
BIAS_KINDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "qkv": ("qkv",),  # Qwen2
    "attention": ("qkv", "out"),  # LLaMA's attention_bias
    "all": ("qkv", "out", "mlp"),  # GPT-2, BERT
}


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """A transformer: a decoder (causal, LM head) by default, or an encoder (BERT: causal=False, post-LN, token
    types, pooler), in the symbols of the FLOP table.

    v = vocab_size, h = hidden_size, N = n_layers, n = n_heads, n_kv = n_kv_heads (grouped-query attention when
    n_kv < n), d = head_dim (default h / n), i = intermediate_size (SwiGLU projection dim, or the GELU MLP width).
    The attention width n·d usually equals h; a config may set head_dim explicitly to make it differ.
    """

    name: str
    vocab_size: int  # v
    hidden_size: int  # h
    n_layers: int  # N
    n_heads: int  # n
    intermediate_size: int  # i
    n_kv_heads: int | None = None  # n_kv; None: = n_heads (multi-head attention)
    head_dim: int | None = None  # d; None: = h / n (h must then be divisible by n)
    max_seq_len: int = 4096  # context length (sizes the learned position table)
    mlp: str = "swiglu"  # "swiglu": w2(silu(w1 x) ⊙ w3 x); "gelu": w2(gelu(w1 x))
    norm: str = "rmsnorm"  # "rmsnorm" (γ only) or "layernorm" (γ and β)
    # "pre": x + f(norm(x)) and a final norm (LLaMA, GPT-2); "post": norm(x + f(x)) and a norm on the embeddings (BERT)
    norm_position: str = "pre"
    position: str = "rope"  # "rope" (no parameters) or "learned" (a max_seq_len × h table)
    tie_embeddings: bool = False  # LM head shares the token embedding matrix
    bias: str = "none"  # which linears have a bias: a key of BIAS_KINDS (True / False: "all" / "none")
    causal: bool = True  # causal self-attention (decoder); False: every token attends to every token (encoder)
    token_types: int = 0  # rows of a token-type (segment) embedding table added to the input (BERT: 2)
    head: str = "lm"  # "lm": v × h LM head; "pooler": tanh(W·x_0 + b), W h × h, on the first token (BertModel)
    notes: str = field(default="", compare=False)  # where the numbers come from, quirks

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty str, got {self.name!r}")
        for f in ("vocab_size", "hidden_size", "n_layers", "n_heads", "intermediate_size", "max_seq_len"):
            _check_positive_int(f, getattr(self, f))
        if self.n_kv_heads is not None:
            _check_positive_int("n_kv_heads", self.n_kv_heads)
            if self.n_heads % self.n_kv_heads:
                raise ValueError(f"n_kv_heads: expected a divisor of n_heads={self.n_heads}, got {self.n_kv_heads}")
        if self.head_dim is None:
            if self.hidden_size % self.n_heads:
                raise ValueError(f"hidden_size: {self.hidden_size} is not divisible by n_heads={self.n_heads} "
                                 f"(set head_dim explicitly if the attention width n·d differs from h)")
        else:
            _check_positive_int("head_dim", self.head_dim)
        _check_choice("mlp", self.mlp, _MLP_KINDS)
        _check_choice("norm", self.norm, _NORM_KINDS)
        _check_choice("norm_position", self.norm_position, _NORM_POSITIONS)
        _check_choice("position", self.position, _POSITION_KINDS)
        _check_choice("head", self.head, _HEAD_KINDS)
        if isinstance(self.bias, bool):
            object.__setattr__(self, "bias", "all" if self.bias else "none")
        _check_choice("bias", self.bias, tuple(BIAS_KINDS))
        for f in ("tie_embeddings", "causal"):
            if not isinstance(getattr(self, f), bool):
                raise TypeError(f"{f}: expected a bool, got {getattr(self, f)!r}")
        if self.token_types != 0:
            _check_positive_int("token_types", self.token_types)
        if self.tie_embeddings and self.head != "lm":
            raise ValueError(f"tie_embeddings: only an LM head can share the embedding matrix, got head={self.head!r}")

    @property
    def d(self) -> int:
        """Head dimension d."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.n_heads

    @property
    def kv_heads(self) -> int:
        """n_kv: key/value heads."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def q_dim(self) -> int:
        """Query / attention-output width n·d."""
        return self.n_heads * self.d

    @property
    def kv_dim(self) -> int:
        """Key (and value) width n_kv·d."""
        return self.kv_heads * self.d

    def has_bias(self, linears: str) -> bool:
        """Whether these linears ("qkv", "out" or "mlp") have biases."""
        return linears in BIAS_KINDS[self.bias]

    def with_(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"changes: unknown ModelConfig fields {sorted(unknown)}")
        return replace(self, **changes)


def from_llama_config(cfg, name: str = "llama") -> ModelConfig:
    """The analytic twin of a qtorch.models.LlamaConfig (untied embeddings, no biases, RoPE, RMSNorm, SwiGLU)."""
    missing = [f for f in ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_seq_len")
               if not hasattr(cfg, f)]
    if missing:
        raise TypeError(f"cfg: expected a LlamaConfig, got {type(cfg).__name__} without {missing}")
    return ModelConfig(name=name, vocab_size=cfg.vocab_size, hidden_size=cfg.dim, n_layers=cfg.n_layers,
                       n_heads=cfg.n_heads, n_kv_heads=getattr(cfg, "n_kv_heads", None),
                       intermediate_size=cfg.hidden_dim, max_seq_len=cfg.max_seq_len)


# Hugging Face key -> ModelConfig field (LLaMA family, BERT, GPT-2 style).
_HF_ALIASES = {
    "vocab_size": ("vocab_size",),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "n_heads": ("num_attention_heads", "n_head"),
    "n_kv_heads": ("num_key_value_heads",),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "head_dim": ("head_dim",),
    "max_seq_len": ("max_position_embeddings", "n_positions", "n_ctx"),
}


def from_hf_config(config, name: str | None = None) -> ModelConfig:
    """A ModelConfig from a Hugging Face config: its dict (config.json contents), a transformers PretrainedConfig,
    or the path of a config.json or of its folder. The architecture (qtorch.analysis.hf_config) is the LLaMA family
    (llama, mistral, qwen2), GPT-2 style (gpt2, gpt_neo, opt) or the BERT encoder (BertModel); anything else is a
    ValueError.

    Sizes come from hidden_size / n_embd, num_hidden_layers / n_layer, num_attention_heads / n_head,
    num_key_value_heads, intermediate_size / n_inner (GPT-2 default 4h), head_dim, max_position_embeddings /
    n_positions; type_vocab_size gives BERT's token types.
    """
    config, found_name = hf_config_dict(config)
    family = check_architecture(config)
    values = {}
    for target, keys in _HF_ALIASES.items():
        for key in keys:
            if config.get(key) is not None:
                values[target] = config[key]
                break
    if family == "gpt2" and "intermediate_size" not in values and "hidden_size" in values:
        values["intermediate_size"] = 4 * values["hidden_size"]
    required = ("vocab_size", "hidden_size", "n_layers", "n_heads", "intermediate_size")
    missing = [f"{t} (one of {', '.join(_HF_ALIASES[t])})" for t in required if t not in values]
    if missing:
        raise ValueError(f"config: missing required fields: {'; '.join(missing)}")
    values.setdefault("max_seq_len", 4096)
    return ModelConfig(name=name or found_name or config.get("_name_or_path") or config.get("model_type")
                       or "hf-model", **values, **architecture_fields(config, family))
