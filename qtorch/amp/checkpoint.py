"""Save and resume a MixedPrecision training state through ``torch.distributed.checkpoint`` (DCP).

One checkpoint holds the model's state_dict (its buffers and frozen parameters; the trained half weights are
rebuilt from the masters), the fp32 masters, the optimizer state, the loss scaler and the step counters. Under
FSDP2 the masters, optimizer states and parameters are DTensors: every rank writes its own shards and DCP reshards on
load, so a checkpoint can be resumed on another world size; on the same world size the resume is bit-exact.
Without a process group DCP saves and loads in a single process.
"""
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import _init_optim_state

from qtorch.amp.wrapper import MixedPrecision

__all__ = ["save_checkpoint", "load_checkpoint"]


def _checkpoint_state(mp: MixedPrecision) -> dict:
    return {"model": mp.model.state_dict(), "mixed_precision": mp.state_dict()}


def save_checkpoint(mp: MixedPrecision, path: str) -> None:
    """Write ``mp``'s model and training state to the directory ``path`` (every rank calls it)."""
    if not isinstance(mp, MixedPrecision):
        raise TypeError(f"mp: expected a MixedPrecision, got {type(mp).__name__}")
    dcp.save(_checkpoint_state(mp), checkpoint_id=str(path))


def load_checkpoint(mp: MixedPrecision, path: str) -> None:
    """Load a ``save_checkpoint`` directory into ``mp`` (every rank calls it), in place; ``mp`` wraps a model built
    and sharded as when saving (the world size may differ). The optimizer's state is created first (a zero-gradient
    step at lr 0, ``torch.distributed.checkpoint.state_dict``'s own way) so that DCP has tensors to load into."""
    if not isinstance(mp, MixedPrecision):
        raise TypeError(f"mp: expected a MixedPrecision, got {type(mp).__name__}")
    _init_optim_state(mp.optimizer)
    state = _checkpoint_state(mp)
    dcp.load(state, checkpoint_id=str(path))
    mp.load_state_dict(state["mixed_precision"])
