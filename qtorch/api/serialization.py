"""Saving and loading quantized models through safetensors.

The file holds the model's state_dict (plain tensors: int8 / packed uint8 weights, scales, zero points, codebooks,
biases, each QuantLinear's `qscheme` record) and, in the safetensors metadata:
  "qtorch_format"  the format version;
  "config"         the PerLayerConfig of the quantized layers (JSON), so qtorch.load_config(path) can rebuild the
                   model skeleton (e.g. on the meta device) before loading;
  "aliases"        {name: name it shares storage with}: tensors shared by tied layers are stored once.
Loading is bit-exact. Into a model built on the meta device, load_state_dict(assign=True) is used.
"""
import json

import torch
import torch.nn as nn

from qtorch.api.sharded_state import full_state_dict, shard_like, write_on_rank0
from qtorch.config import PerLayerConfig
from qtorch.nn.base import QuantLinear

FORMAT_VERSION = "1"


def quantized_config(model: nn.Module) -> PerLayerConfig:
    """The PerLayerConfig that rebuilds the QuantLinear layers of `model` (every other layer left float)."""
    return PerLayerConfig({name: m.config for name, m in model.named_modules(remove_duplicate=False)
                           if isinstance(m, QuantLinear)})


def _dedupe(state_dict: dict) -> tuple[dict, dict]:
    """Store each shared tensor once; a tensor overlapping another's storage otherwise is copied."""
    tensors, aliases, seen, storages = {}, {}, {}, set()
    for name, t in state_dict.items():
        if t.device.type == "meta":
            raise ValueError(f"model: {name} is on the meta device; load or compute its values before saving")
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.dtype, tuple(t.shape), t.stride())
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        ptr = t.untyped_storage().data_ptr()
        t = t.contiguous()
        if ptr in storages and t.numel():
            t = t.clone()
        storages.add(ptr)
        tensors[name] = t
    return tensors, aliases


def save_quantized(model: nn.Module, path: str) -> None:
    """Write model.state_dict() and the quantization config to a .safetensors file. A model sharded with FSDP2:
    every rank calls it, the shards are gathered and rank 0 writes."""
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    tensors, aliases = _dedupe(full_state_dict(model.state_dict()))  # FSDP2 shards gathered (every rank calls)
    metadata = {"qtorch_format": FORMAT_VERSION, "config": json.dumps(quantized_config(model).to_dict()),
                "aliases": json.dumps(aliases)}
    write_on_rank0(lambda: save_file(tensors, str(path), metadata=metadata))


def _metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("qtorch_format") != FORMAT_VERSION:
        raise ValueError(f"path: {path} is not a qtorch quantized checkpoint (format {FORMAT_VERSION}); "
                         "write it with qtorch.save_quantized")
    return metadata


def load_config(path) -> PerLayerConfig:
    """The PerLayerConfig stored in a checkpoint: quantize_(model, load_config(path)) rebuilds its layers."""
    return PerLayerConfig.from_dict(json.loads(_metadata(path)["config"]))


def load_quantized(model: nn.Module, path, *, device=None, strict: bool = True):
    """Load a save_quantized checkpoint into `model`, whose layers must already be quantized with the same configs
    (quantize_(model, load_config(path)); on the meta device for a model too big to build twice).

    Tensors are read onto `device` (default: the model's device, or cpu for a meta model) and assigned
    (load_state_dict(assign=True)) when the model holds meta tensors, copied into it otherwise. A model sharded with
    FSDP2: every rank reads the file and keeps its shard of each sharded parameter.
    Returns load_state_dict's (missing_keys, unexpected_keys)."""
    from safetensors.torch import load_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    metadata = _metadata(path)
    config = PerLayerConfig.from_dict(json.loads(metadata["config"]))
    modules = dict(model.named_modules(remove_duplicate=False))
    for name, cfg in config.layers.items():
        if not isinstance(modules.get(name), QuantLinear):
            found = type(modules[name]).__name__ if name in modules else "no such module"
            raise ValueError(f"{name}: the checkpoint holds a layer quantized with {cfg!r}, the model has {found}; "
                             "run qtorch.quantize_(model, qtorch.load_config(path)) first")
    tensors = list(model.state_dict().values())
    on_meta = any(t.device.type == "meta" for t in tensors)
    if device is None:
        real = [t.device for t in tensors if t.device.type != "meta"]
        device = real[0] if real else torch.device("cpu")
    state_dict = load_file(str(path), device=str(device))
    for name, source in json.loads(metadata["aliases"]).items():
        state_dict[name] = state_dict[source]
    state_dict = shard_like(state_dict, model.state_dict())  # this rank's shard of each FSDP2 parameter
    return model.load_state_dict(state_dict, strict=strict, assign=on_meta)
