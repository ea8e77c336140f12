"""One rank of the 2-process gloo tests (tests/test_amp_distributed.py starts it with RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT set, as torchrun does): python tests/distributed_worker.py {ddp,fsdp,fsdp-reduce-fp32} OUT_DIR.

Writes OUT_DIR/rank{r}.pt: the loss curve, the skip counts around an inf injected on rank 0 only, the loss scale,
the losses after a checkpoint resume, the full final parameters and the masters saved in the checkpoint
(OUT_DIR/ckpt), which the test resumes on one process."""
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from qtorch.amp import MixedPrecision
from qtorch.amp.checkpoint import load_checkpoint, save_checkpoint
from qtorch.amp.distributed import local_tensor

STEPS = 30
DTYPE = {"ddp": torch.float16, "fsdp": torch.bfloat16, "fsdp-reduce-fp32": torch.bfloat16}


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 32), nn.GELU(),
                         nn.Linear(32, 4))


def task():
    """256 samples, 4 classes from a noisy linear teacher (the same on every rank)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=g)  # (B, 8) fp32
    y = (x @ torch.randn(8, 4, generator=g) + 0.3 * torch.randn(256, 4, generator=g)).argmax(1)
    return x, y


def wrap(kind: str, model: nn.Module):
    """(module to call, MixedPrecision) for one data-parallel engine."""
    if kind == "ddp":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        mp = MixedPrecision(model, opt, dtype=DTYPE[kind])
        return DistributedDataParallel(model), mp
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # "fsdp-reduce-fp32": FSDP2's policy only raises the reduce-scatter to fp32; qtorch keeps the storage dtypes
    policy = MixedPrecisionPolicy(reduce_dtype=torch.float32 if kind == "fsdp-reduce-fp32" else None)
    for layer in model:  # each fp32 module (LayerNorm) is its own FSDP unit: one parameter dtype per unit
        if isinstance(layer, (nn.Linear, nn.LayerNorm)):
            fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, MixedPrecision(model, opt, dtype=DTYPE[kind], loss_scale="dynamic")


def train(step_fn, mp, steps, x, y):
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(step_fn(x.to(mp.dtype)).float(), y)
        mp.backward(loss)
        mp.step()
        losses.append(loss.detach().clone())
    return torch.stack(losses)


def full_params(named):
    """{name: full fp32 copy} of a module's parameters or of a {name: tensor} dict (DTensors gathered)."""
    items = named.named_parameters() if isinstance(named, nn.Module) else named.items()
    return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().float().clone() for n, p in items}


def main(kind: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = task()
    x, y = x.chunk(world)[rank], y.chunk(world)[rank]  # this rank's half of every batch
    model = build_model()
    step_fn, mp = wrap(kind, model)
    losses = train(step_fn, mp, STEPS, x, y)
    states = [t for s in mp.optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0]
    updated = [p for group in mp.optimizer.param_groups for p in group["params"]]  # masters + fp32 modules' params
    held = {"masters_local": sum(local_tensor(m).numel() for m in updated),
            "masters_full": sum(m.numel() for m in updated),
            "states_local": sum(local_tensor(t).numel() for t in states), "states_full": sum(t.numel() for t in states)}

    # an inf in one gradient on rank 0 only: every rank must skip
    scale_before, updates_before = mp.loss_scale, mp.updates
    before = full_params(model)
    mp.backward(F.cross_entropy(step_fn(x.to(mp.dtype)).float(), y))
    if rank == 0:
        local_tensor(model[0].weight.grad).view(-1)[0] = float("inf")
    stepped = mp.step()
    unchanged = all(torch.equal(before[n], p) for n, p in full_params(model).items())
    skip = {"stepped": stepped, "unchanged": unchanged, "scale_before": scale_before, "scale_after": mp.loss_scale,
            "updates": mp.updates - updates_before}

    # checkpoint, 3 more steps; then a fresh model resumed from the checkpoint takes the same 3 steps
    ckpt = os.path.join(out_dir, "ckpt")
    save_checkpoint(mp, ckpt)
    saved_masters = full_params(mp.state_dict()["masters"])
    after_save = train(step_fn, mp, 3, x, y)
    final = full_params(model)
    model2 = build_model()
    step_fn2, mp2 = wrap(kind, model2)
    load_checkpoint(mp2, ckpt)
    resumed = train(step_fn2, mp2, 3, x, y)
    torch.save({"losses": losses, "skip": skip, "after_save": after_save, "resumed": resumed,
                "resumed_params": full_params(model2), "final": final, "updates": mp2.updates,
                "saved_masters": saved_masters, "loss_scale": mp2.loss_scale, "held": held},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
