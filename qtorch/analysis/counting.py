"""count_flops: measured FLOPs of a forward (and backward) pass, on torch.utils.flop_counter.FlopCounterMode, with
formulas it lacks: CPU scaled-dot-product attention, the causal mask (optional), torch._int_mm and qtorch's own ops
(int8 matmuls reported as int8 OPs, apart from float FLOPs)."""
import importlib
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

# (op packet name, True for a backward op) of every scaled-dot-product attention kernel F.scaled_dot_product_attention
# dispatches to; forward args start (query, key, value), backward ones (grad_out, query, key, value).
_SDPA_OPS = (
    ("_scaled_dot_product_flash_attention_for_cpu", False),
    ("_scaled_dot_product_flash_attention_for_cpu_backward", True),
    ("_scaled_dot_product_flash_attention", False),
    ("_scaled_dot_product_flash_attention_backward", True),
    ("_scaled_dot_product_efficient_attention", False),
    ("_scaled_dot_product_efficient_attention_backward", True),
    ("_scaled_dot_product_cudnn_attention", False),
    ("_scaled_dot_product_cudnn_attention_backward", True),
)
# qtorch ops: name -> (formula over shapes, integer op?); the matmul work only (2·M·N·K), like aten.mm.
_QTORCH_OPS = {
    "int8_scaled_mm": (lambda x_q, x_scale, x_zp, w_q, *rest, **kw: 2 * x_q[0] * x_q[1] * w_q[0], True),
    "int8_linear_requant": (lambda x_q, x_zp, w_q, *rest, **kw: 2 * x_q[0] * x_q[1] * w_q[0], True),
    "weight_only_linear": (lambda x, w_q, w_scale, *rest, **kw: 2 * x[0] * x[1] * w_scale[0], False),
    "codebook_linear": (lambda x, indices, codebook, *rest, **kw: 2 * x[0] * x[1] * codebook[0], False),
}
CAUSAL_MODES = ("dense", "exact")


def causal_pairs(s_q: int, s_k: int) -> int:
    """Unmasked (query, key) pairs of SDPA's is_causal mask (top-left aligned: query i sees keys 0..i)."""
    full = min(s_q, s_k)
    return full * (full + 1) // 2 + max(s_q - s_k, 0) * s_k


def _arg(schema, args, kwargs, name, default=None):
    if name in kwargs:
        return kwargs[name]
    for pos, a in enumerate(schema.arguments):
        if a.name == name:
            return args[pos] if pos < len(args) else default
    return default


def _sdpa_formula(op_name: str, backward: bool, causal: str):
    """FLOPs of one SDPA kernel: 2·b·h_q·P·d (QKᵀ) + 2·b·h_q·P·d_v (PV), P = s_q·s_k or, with causal="exact" and
    is_causal, causal_pairs(s_q, s_k); backward 2× that (dQ, dK, dV, dP)."""
    schema = getattr(aten, op_name).default._schema
    offset = 1 if backward else 0

    def formula(*args, out_shape=None, **kwargs):
        (b, h_q, s_q, d), (_, _, s_k, _), (_, _, _, d_v) = args[offset:offset + 3]
        is_causal = bool(_arg(schema, args, kwargs, "is_causal", False))
        pairs = causal_pairs(s_q, s_k) if causal == "exact" and is_causal else s_q * s_k
        flops = 2 * b * h_q * pairs * (d + d_v)
        return 2 * flops if backward else flops

    return formula


def _int_mm_flops(a, b, out_shape=None, **kwargs):
    return 2 * a[0] * a[1] * b[1]


def _qtorch_ops() -> dict:
    """The qtorch:: op packets that exist now (qtorch.ops imported on demand; absent ops skipped)."""
    try:
        importlib.import_module("qtorch.ops")
    except ImportError:
        return {}
    found = {}
    for name, (formula, is_int) in _QTORCH_OPS.items():
        try:
            packet = getattr(torch.ops.qtorch, name)
        except (AttributeError, RuntimeError):
            continue
        found[packet] = (formula, is_int)
    return found


def flop_mapping(causal: str = "dense") -> tuple[dict, set]:
    """(custom_mapping for FlopCounterMode, the op packets whose counts are integer OPs)."""
    if causal not in CAUSAL_MODES:
        raise ValueError(f"causal: expected one of {CAUSAL_MODES}, got {causal!r}")
    mapping = {}
    for name, backward in _SDPA_OPS:
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _sdpa_formula(name, backward, causal)
    mapping[aten._int_mm] = _int_mm_flops
    int_ops = {aten._int_mm}
    for packet, (formula, is_int) in _qtorch_ops().items():
        mapping[packet] = formula
        if is_int:
            int_ops.add(packet)
    return mapping, int_ops


@dataclass(frozen=True)
class FlopCount:
    """Measured counts. FLOPs: float matmul-class work (2 per multiply-accumulate); int8 OPs: integer matmuls."""

    forward_flops: int
    backward_flops: int
    forward_int8_ops: int
    backward_int8_ops: int
    by_module: dict[str, dict[str, int]]  # module path -> {"forward", "backward", "forward_int8", "backward_int8"}
    by_op: dict[str, dict[str, int]]  # op name -> same keys

    @property
    def total_flops(self) -> int:
        return self.forward_flops + self.backward_flops

    @property
    def total_int8_ops(self) -> int:
        return self.forward_int8_ops + self.backward_int8_ops

    def table(self, depth: int = 2) -> str:
        """Per-module table (execution order) down to `depth` levels below the root module."""
        from qtorch.analysis.report import format_table, human

        rows = []
        for name, c in self.by_module.items():
            level = name.count(".")
            if name == "Global" or level > depth or not any(c.values()):
                continue
            label = "  " * level + (name.split(".", 1)[1] if level else name)
            rows.append([label, human(c["forward"]), human(c["backward"]),
                         human(c["forward_int8"] + c["backward_int8"])])
        rows.append(["total", human(self.forward_flops), human(self.backward_flops), human(self.total_int8_ops)])
        return format_table(["module", "fwd FLOPs", "bwd FLOPs", "int8 OPs"], rows)


def _split(counts: dict, int_ops: set) -> tuple[int, int]:
    flops = sum(v for op, v in counts.items() if op not in int_ops)
    return flops, sum(v for op, v in counts.items() if op in int_ops)


def count_flops(model, inputs, backward: bool = True, causal: str = "dense", loss_fn=None) -> FlopCount:
    """Run model(*inputs) (and the backward of loss_fn(output), default output.float().sum()) under
    FlopCounterMode; count matmul-class FLOPs per module and per op, float and int8 apart.

    causal: "dense" counts attention over all s_q·s_k pairs (FlopCounterMode's convention); "exact" counts an
    is_causal SDPA over its unmasked pairs only (causal_pairs). Elementwise ops (norms, softmax outside SDPA,
    activations, residual adds, quantize/dequantize) are not counted, as in FlopCounterMode.
    """
    if not callable(model):
        raise TypeError(f"model: expected an nn.Module or callable, got {type(model).__name__}")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(f"inputs: expected a tensor or a tuple of arguments, got {type(inputs).__name__}")
    mapping, int_ops = flop_mapping(causal)
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        out = model(*inputs)
        forward = counter.get_flop_counts()
        if backward:
            if loss_fn is None:
                if not isinstance(out, torch.Tensor):
                    raise TypeError("loss_fn: needed when the model does not return a tensor")
                loss = out.float().sum()
            else:
                loss = loss_fn(out)
            if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
                raise ValueError("backward: the loss does not require grad (no trainable parameters or inputs?)")
            loss.backward()
    total = counter.get_flop_counts()
    by_module, by_op = {}, {}
    for module, ops in total.items():
        fwd_ops = forward.get(module, {})
        entry = by_module.setdefault(module, dict.fromkeys(("forward", "backward", "forward_int8", "backward_int8"), 0))
        for op, count in ops.items():
            f = fwd_ops.get(op, 0)
            kind = "_int8" if op in int_ops else ""
            entry["forward" + kind] += f
            entry["backward" + kind] += count - f
            if module == "Global":
                op_entry = by_op.setdefault(str(op), dict.fromkeys(entry, 0))
                op_entry["forward" + kind] += f
                op_entry["backward" + kind] += count - f
    fwd_flops, fwd_int = _split(forward.get("Global", {}), int_ops)
    all_flops, all_int = _split(total.get("Global", {}), int_ops)
    return FlopCount(fwd_flops, all_flops - fwd_flops, fwd_int, all_int - fwd_int, by_module, by_op)
