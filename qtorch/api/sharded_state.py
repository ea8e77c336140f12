"""State dicts of models sharded with FSDP2 (``fully_shard``) / DTensor, for save_quantized and load_quantized.

FSDP2 shards parameters only: a quantized model's QuantLinear tensors are buffers (quantized weights, scales, zero
points, biases, codebooks) and stay replicated on every rank; its float parameters (norms, embeddings, adapters)
are DTensor shards. Saving gathers the shards (a collective: every rank calls save_quantized) and rank 0 writes
the file; loading reads the full file on every rank and keeps this rank's shard of each sharded parameter.
"""
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, distribute_tensor

__all__ = ["full_state_dict", "shard_like", "write_on_rank0"]


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def full_state_dict(state_dict: dict) -> dict:
    """The state dict with every DTensor gathered into a full tensor (every rank must call it)."""
    return {name: t.full_tensor() if isinstance(t, DTensor) else t for name, t in state_dict.items()}


def shard_like(full: dict, state_dict: dict) -> dict:
    """``full`` with each tensor whose counterpart in ``state_dict`` is a DTensor cut to this rank's shard of it
    (same mesh and placements; no communication: every rank holds the full tensor)."""
    out = dict(full)
    for name, target in state_dict.items():
        if isinstance(target, DTensor) and name in out and not isinstance(out[name], DTensor):
            out[name] = distribute_tensor(out[name].to(target.device), target.device_mesh, target.placements,
                                          src_data_rank=None)
    return out


def write_on_rank0(write) -> None:
    """Call ``write()`` on rank 0 only when a process group is initialized (then wait for it on every rank)."""
    if not _group_active():
        write()
        return
    if dist.get_rank() == 0:
        write()
    dist.barrier()
