"""FLOP-counting conventions: every choice the analytic model makes, named, with presets that reproduce the course's
numbers and one that matches what torch.utils.flop_counter.FlopCounterMode measures."""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FlopConventions:
    """What one forward pass counts. Matmuls always count 2 FLOPs per multiply-accumulate (never MACs as FLOPs)."""

    name: str
    kv_proj: str = "gqa"  # "gqa": K, V projections 2·b·s·h·(n_kv·d); "mha": 2·b·s·h·(n·d) each, as the course table
    causal: bool = True  # QKᵀ, softmax, PV over the unmasked (query, key) pairs only; False: all s_q·s_k pairs
    softmax: int = 3  # FLOPs per attention score (exp, sum, divide: the course's 3bs²n); 0: not counted
    rope: str = "qk"  # rotary embedding counted on "qk", on "q" only (the course row 3bsnd), or "none"
    rope_flops: int = 3  # per rotated element: 2 multiplies + 1 add
    norm: bool = True  # RMSNorm 4h + 2 per token (course row), LayerNorm 7h + 3; False: not counted
    residual: int = 1  # FLOPs per element of each residual add (and of a learned-position add); 0: not counted
    swish: int = 4  # FLOPs per element of Swish z·σ(z) = z / (1 + e^-z): negate, exp, add, divide
    gelu: int = 8  # FLOPs per element of tanh-GELU
    tanh: int = 5  # FLOPs per element of tanh z = 1 - 2 / (e^2z + 1): multiply, exp, add, divide, subtract
    glu_product: int = 1  # FLOPs per element of SwiGLU's Swish(gate) ⊙ up
    bias_adds: bool = True  # 1 FLOP per output element of each linear with a bias
    embedding: str = "gather"  # "gather": a lookup, 0 FLOPs; "matmul": one-hot · table, 2·b·s·v·h
    backward_factor: float = 2.0  # backward FLOPs = factor × forward FLOPs (dX and dW: one matmul each)

    def __post_init__(self):
        if self.kv_proj not in ("gqa", "mha"):
            raise ValueError(f"kv_proj: expected 'gqa' or 'mha', got {self.kv_proj!r}")
        if self.rope not in ("qk", "q", "none"):
            raise ValueError(f"rope: expected 'qk', 'q' or 'none', got {self.rope!r}")
        if self.embedding not in ("gather", "matmul"):
            raise ValueError(f"embedding: expected 'gather' or 'matmul', got {self.embedding!r}")
        for f in ("softmax", "rope_flops", "residual", "swish", "gelu", "tanh", "glu_product"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f}: expected a non-negative int (FLOPs per element), got {v!r}")
        if not self.backward_factor >= 0:
            raise ValueError(f"backward_factor: expected >= 0, got {self.backward_factor!r}")

    def with_(self, **changes) -> "FlopConventions":
        return replace(self, **changes)


_MATMUL_ONLY = dict(softmax=0, rope="none", norm=False, residual=0, swish=0, gelu=0, tanh=0, glu_product=0,
                    bias_adds=False)

CONVENTIONS: dict[str, FlopConventions] = {
    # qtorch's default: what the model computes (grouped-query K/V, causal mask honoured, elementwise work counted).
    "qtorch": FlopConventions("qtorch"),
    # The course's total formula N(6bsh² + 4bs²h + 3bs²n + 2bsh²) + N·6bshi + 2bshv (62.97 TFLOPs for LLaMA-2-7B):
    # K/V projections as if multi-head, full s² attention, softmax counted, nothing else elementwise.
    "course": FlopConventions("course", kv_proj="mha", causal=False, **{**_MATMUL_ONLY, "softmax": 3}),
    # Every row of the course table: the formula plus RoPE on Q (3bsnd), residuals (bsh each), Swish (4bsi),
    # the SwiGLU product (bsi) and RMSNorm (4bsh + 2bs).
    "course-table": FlopConventions("course-table", kv_proj="mha", causal=False, rope="q", bias_adds=False),
    # The course's "192.17 TFLOPs" training breakdown, reconstructed: the formula plus the embedding counted as a
    # matmul (2bshv, equal to the head), Swish and product 1 FLOP per element each, RMSNorm rows, residual adds at
    # 2 FLOPs per element, no RoPE; training = 3 × forward for every category. These are the only integer choices
    # that reproduce all six published percentages and the total (see docs/ANALYSIS.md).
    "course-breakdown": FlopConventions("course-breakdown", kv_proj="mha", causal=False, rope="none", residual=2,
                                        swish=1, glu_product=1, bias_adds=False, embedding="matmul"),
    # What FlopCounterMode measures: matmul-class ops only (mm, addmm, bmm, SDPA), dense attention (it ignores the
    # causal mask), grouped-query K/V as computed.
    "flop-counter": FlopConventions("flop-counter", causal=False, **_MATMUL_ONLY),
    # qtorch.analysis.count_flops(..., causal="exact"): matmul-class ops, causal attention over unmasked pairs.
    "flop-counter-causal": FlopConventions("flop-counter-causal", causal=True, **_MATMUL_ONLY),
}


def get_conventions(conventions) -> FlopConventions:
    """A FlopConventions, or the preset of that name (ValueError listing the valid ones)."""
    if isinstance(conventions, FlopConventions):
        return conventions
    if conventions not in CONVENTIONS:
        raise ValueError(f"conventions: unknown {conventions!r}; valid: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[conventions]
