"""Actual bytes held by a mixed-precision training setup, by role (course notes: 16 bytes/parameter with Adam)."""
import torch

__all__ = ["tensor_bytes", "training_memory_breakdown"]


def tensor_bytes(tensors) -> int:
    """Σ numel · element_size over distinct tensors (a tensor listed twice counts once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def training_memory_breakdown(model: torch.nn.Module, optimizer: torch.optim.Optimizer, masters,
                              half_dtype: torch.dtype) -> dict[str, int]:
    """Bytes of each role; ``masters`` are the separate fp32 copies of the half parameters.

    half_weights / half_grads: parameters stored in ``half_dtype`` and their gradients (2 + 2 bytes/param);
    fp32_masters / fp32_master_grads: the fp32 copies the optimizer updates and their gradients (4 bytes/param;
      the gradients exist only inside ``step()`` or while accumulating over several backward calls);
    fp32_params / fp32_param_grads: parameters kept in fp32 (modules run in fp32; they are their own masters);
    other_params: parameters of any other dtype (integer, float64);
    optimizer_states: per-element optimizer state (Adam: exp_avg + exp_avg_sq, 4 + 4 bytes/param);
    optimizer_scalars: 0-dim optimizer state (Adam's step counter, one per parameter tensor);
    total: the sum.
    With Adam and fp32 masters: half_weights + half_grads + fp32_masters + optimizer_states = (2 + 2 + 4 + 8)·N.
    """
    params = list(model.parameters())
    half = [p for p in params if p.dtype == half_dtype]
    fp32 = [p for p in params if p.dtype == torch.float32]
    half_ids, fp32_ids = {id(p) for p in half}, {id(p) for p in fp32}
    other = [p for p in params if id(p) not in half_ids and id(p) not in fp32_ids]
    states = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    out = {
        "half_weights": tensor_bytes(half),
        "half_grads": tensor_bytes(p.grad for p in half),
        "fp32_masters": tensor_bytes(masters),
        "fp32_master_grads": tensor_bytes(m.grad for m in masters),
        "fp32_params": tensor_bytes(fp32),
        "fp32_param_grads": tensor_bytes(p.grad for p in fp32),
        "other_params": tensor_bytes(other),
        "optimizer_states": tensor_bytes(t for t in states if t.dim() > 0),
        "optimizer_scalars": tensor_bytes(t for t in states if t.dim() == 0),
    }
    out["total"] = sum(out.values())
    return out
