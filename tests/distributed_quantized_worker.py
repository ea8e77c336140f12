"""One rank of the quantized-model FSDP2 test (tests/test_amp_distributed.py starts it, torchrun-style env):
python tests/distributed_quantized_worker.py OUT_DIR. Writes OUT_DIR/rank{r}.pt with what the test checks."""
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.distributed.fsdp import fully_shard

import qtorch
from qtorch.amp import MixedPrecision
from qtorch.config import GroupWeightOnlyConfig


def quantized_model() -> nn.Module:
    """A frozen 4-bit base (QuantLinear: buffers only) with float LayerNorm and an adapter head (parameters)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 8))
    qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32), skip=("4",))
    return model


def shard(model: nn.Module) -> nn.Module:
    fully_shard(model[1])  # fp32 module: its own unit
    fully_shard(model[4])
    fully_shard(model)
    return model


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(2))  # (B, 64) fp32
    reference = quantized_model()
    expected = reference(x)
    model = shard(quantized_model())
    kinds = {n: type(p).__name__ for n, p in model.named_parameters()}
    kinds.update({n: type(b).__name__ for n, b in model.named_buffers()})
    forward_equal = torch.equal(model(x), expected)

    path = os.path.join(out_dir, "model.safetensors")
    qtorch.save_quantized(model, path)  # every rank calls; rank 0 writes
    saved = load_file(path)
    file_equal = saved.keys() == reference.state_dict().keys() and all(
        torch.equal(saved[k], t) for k, t in reference.state_dict().items())
    try:  # FSDP2 ran a forward on model: the half conversion would break its all-gathers
        MixedPrecision(model, torch.optim.AdamW(model.parameters()), dtype=torch.bfloat16)
        late_wrap = "accepted"
    except ValueError as exc:
        late_wrap = str(exc)
    torch.manual_seed(1)  # other float values: the load has to overwrite every shard
    loaded = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 8))
    qtorch.quantize_(loaded, qtorch.load_config(path))  # quantize first, then shard (quantize_ reads full weights)
    shard(loaded)
    for p in loaded.parameters():
        nn.init.normal_(p.data.to_local())
    qtorch.load_quantized(loaded, path)
    loaded_equal = torch.equal(loaded(x), expected)

    # a float head fine-tuned on the frozen quantized base (bf16, fp32 masters); the quantized ops have no backward,
    # so trainable parameters sit after the last QuantLinear
    y = torch.arange(6) % 8
    model = quantized_model()
    model[1].requires_grad_(False)
    shard(model)  # MixedPrecision wraps before FSDP2's first forward (its lazy init)
    mp = MixedPrecision(model, torch.optim.AdamW(model[4].parameters(), lr=1e-2), dtype=torch.bfloat16)
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(model(x.bfloat16()).float(), y)
        mp.backward(loss)
        mp.step()
        losses.append(loss.item())
    torch.save({"kinds": kinds, "forward_equal": forward_equal, "file_equal": file_equal, "late_wrap": late_wrap,
                "loaded_equal": loaded_equal, "losses": losses},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
