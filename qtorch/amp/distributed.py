"""MixedPrecision across data-parallel ranks (DDP, FSDP2 ``fully_shard``): the pieces the wrapper needs.

Who owns what (see docs/DISTRIBUTED.md):
  * DDP / FSDP2 own communication: DDP all-reduces, FSDP2 reduce-scatters the half gradients, in the dtype of the
    parameters the wrapper made half (``reduce_dtype`` of FSDP2's MixedPrecisionPolicy can raise it to fp32).
  * MixedPrecision owns the fp32 masters, the loss scale and the step; under FSDP2 the parameters are DTensors of
    local shards, so the masters (``p.detach().float()``), their gradients and the optimizer states are sharded too.
  * The skip decision is global: each rank checks its local gradients (its shard under FSDP2), then the found-inf
    flag is all-reduced with MAX over the default process group, so every rank skips or steps together.
"""
import torch
import torch.distributed as dist

__all__ = ["check_fsdp_not_started", "local_tensor", "local_tensors", "max_over_ranks", "set_param_data"]


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank stores: a DTensor's local shard, any other tensor itself."""
    to_local = getattr(t, "to_local", None)
    return to_local() if to_local is not None else t


def local_tensors(tensors) -> list[torch.Tensor]:
    """``local_tensor`` of each: what the fused ``torch._foreach_*`` kernels take (DTensor has no sharding rule for
    them; the shards of a master and of its half parameter are aligned, so the local op is the global one)."""
    return [local_tensor(t) for t in tensors]


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def max_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``values`` over the ranks of the default process group (in place; identity when no
    group is initialized). NaN becomes +inf first, so that a NaN on one rank reaches every rank."""
    if _group_active():
        torch.nan_to_num_(values, nan=float("inf"))
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values



def set_param_data(param: torch.nn.Parameter, data: torch.Tensor) -> None:
    """``param.data = data``, also for a DTensor parameter (FSDP2), whose ``.data`` setter leaves the local shard
    that FSDP2 all-gathers untouched: the parameter object is kept and its contents swapped, as
    ``nn.Module._apply`` does for tensor subclasses."""
    if type(param.data) is torch.Tensor:
        param.data = data
    else:
        torch.utils.swap_tensors(param, torch.nn.Parameter(data, requires_grad=param.requires_grad))


def check_fsdp_not_started(model: torch.nn.Module) -> None:
    """ValueError if FSDP2 already ran a forward on ``model``: its lazy initialization fixes the all-gather dtypes,
    so the half conversion must come between ``fully_shard`` and the first forward."""
    for name, module in model.named_modules():
        get_state = getattr(module, "_get_fsdp_state", None)
        if get_state is not None and get_state()._is_root is not None:
            raise ValueError(f"model: FSDP2 (fully_shard) has already run a forward on {name or 'the model'}; wrap "
                             f"it with MixedPrecision after fully_shard and before the first forward")
