"""A LLaMA-style decoder: RMSNorm, RoPE, SwiGLU, grouped-query attention through scaled_dot_product_attention,
and a static KV cache for decode (gpt-fast style). Seeded random weights: for speed, FLOP and memory work, not text.
"""
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000
    dim: int = 4096  # h
    n_layers: int = 32  # N
    n_heads: int = 32  # n
    n_kv_heads: int | None = None  # None: = n_heads (multi-head attention)
    hidden_dim: int = 11008  # i, the SwiGLU projection dim
    max_seq_len: int = 4096
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def __post_init__(self):
        for f in ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_seq_len"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f}: expected a positive int, got {v!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim: {self.dim} is not divisible by n_heads={self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"dim / n_heads = {self.head_dim} must be even for rotary embeddings")
        kv = self.kv_heads
        if not 0 < kv <= self.n_heads or self.n_heads % kv:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads={self.n_heads}, got {self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


LLAMA_CONFIGS = {
    "tiny": LlamaConfig(vocab_size=512, dim=128, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=384, max_seq_len=256),
    "small": LlamaConfig(vocab_size=4096, dim=512, n_layers=4, n_heads=8, n_kv_heads=4, hidden_dim=1536,
                         max_seq_len=1024),
    "llama-200m": LlamaConfig(vocab_size=32000, dim=1024, n_layers=12, n_heads=16, hidden_dim=2816, max_seq_len=2048),
    "llama2-7b-shaped": LlamaConfig(),
    "llama2-13b-shaped": LlamaConfig(dim=5120, n_layers=40, n_heads=40, hidden_dim=13824),
    "llama3-8b-shaped": LlamaConfig(vocab_size=128256, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                                    hidden_dim=14336, max_seq_len=8192, rope_theta=500000.0),
}


def get_config(name_or_config) -> LlamaConfig:
    if isinstance(name_or_config, LlamaConfig):
        return name_or_config
    if name_or_config not in LLAMA_CONFIGS:
        raise ValueError(f"model: unknown preset {name_or_config!r}; valid: {', '.join(LLAMA_CONFIGS)}")
    return LLAMA_CONFIGS[name_or_config]


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · γ, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def rope_cache(seq_len: int, head_dim: int, theta: float) -> torch.Tensor:
    """(seq_len, head_dim/2, 2) cos/sin of the rotary angles pos · θ^(-2j/d)."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x (B, S, H, D) by the angles freqs (S, D/2, 2)."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)  # (B, S, H, D/2, 2)
    f = freqs.view(1, xs.shape[1], 1, xs.shape[3], 2)
    out = torch.stack([xs[..., 0] * f[..., 0] - xs[..., 1] * f[..., 1],
                       xs[..., 1] * f[..., 0] + xs[..., 0] * f[..., 1]], dim=-1)
    return out.flatten(3).to(x.dtype)


class KVCache(nn.Module):
    def __init__(self, batch: int, seq_len: int, kv_heads: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, kv_heads, seq_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, H_kv, S, D) at positions input_pos; return the whole cache for the batch."""
        b = k.shape[0]
        self.k[:b, :, input_pos] = k
        self.v[:b, :, input_pos] = v
        return self.k[:b], self.v[:b]


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x, freqs, mask, input_pos):
        b, s, _ = x.shape
        q = apply_rope(self.wq(x).view(b, s, self.n_heads, self.head_dim), freqs)  # (B, S, H, D)
        k = apply_rope(self.wk(x).view(b, s, self.kv_heads, self.head_dim), freqs)  # (B, S, H_kv, D)
        v = self.wv(x).view(b, s, self.kv_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, S, D)
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(input_pos, k, v)
        gqa = self.n_heads != self.kv_heads
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.wo(y.transpose(1, 2).reshape(b, s, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) ⊙ w3 x)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, freqs, mask, input_pos):
        h = x + self.attention(self.attention_norm(x), freqs, mask, input_pos)
        return h + self.feed_forward(self.ffn_norm(h))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.register_buffer("freqs", rope_cache(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta), persistent=False)
        self.cache_len = 0

    def _apply(self, fn, recurse=True):
        """Move with the model, but keep the rotary table in float32 whatever dtype the weights take."""
        super()._apply(fn, recurse)
        if self.freqs.dtype != torch.float32:
            self.freqs = self.freqs.float()
        return self

    def setup_caches(self, max_batch: int, max_seq_len: int, dtype=None, device=None):
        """Allocate a static KV cache per layer; forward then needs input_pos."""
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(f"max_seq_len: {max_seq_len} exceeds the model's {self.config.max_seq_len}")
        dtype = dtype or self.tok_embeddings.weight.dtype  # (the head may be quantized: a QuantLinear has no .weight)
        device = device or self.tok_embeddings.weight.device
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(max_batch, max_seq_len, self.config.kv_heads, self.config.head_dim,
                                               dtype, device)
        self.cache_len = max_seq_len

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, S) int64 -> logits (B, S, vocab). With a KV cache, input_pos (S,) gives the positions."""
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens: expected a (B, S) integer tensor, got {tuple(tokens.shape)} {tokens.dtype}")
        s = tokens.shape[1]
        mask = None
        if input_pos is None:
            if s > self.config.max_seq_len:
                raise ValueError(f"tokens: sequence length {s} exceeds max_seq_len={self.config.max_seq_len}")
            freqs = self.freqs[:s]
        else:
            if self.cache_len == 0:
                raise ValueError("input_pos: call setup_caches() before decoding with positions")
            freqs = self.freqs[input_pos]
            key_pos = torch.arange(self.cache_len, device=tokens.device)
            mask = key_pos[None, :] <= input_pos[:, None]  # (S, cache_len) causal over the cache
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, freqs, mask, input_pos)
        return self.output(self.norm(x))


def build_llama(name_or_config="tiny", *, seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu",
                **overrides) -> Llama:
    """A Llama with seeded random weights (normal, std 0.02; norms at 1), in eval mode."""
    cfg = get_config(name_or_config)
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(LlamaConfig)}
        if unknown:
            raise ValueError(f"overrides: unknown LlamaConfig fields {sorted(unknown)}")
        cfg = replace(cfg, **overrides)
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = Llama(cfg)
    model = model.to_empty(device="cpu")
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.freqs = rope_cache(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta)
    return model.to(device=device, dtype=dtype).eval()
