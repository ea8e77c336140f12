"""Saving and loading quantized models through safetensors.

The file holds the model's state_dict (plain tensors: int8 / packed uint8 weights, scales, zero points, codebooks,
biases, each QuantLinear's `qscheme` record) and, in the safetensors metadata:
  "qtorch_format"  the format version;
  "config"         the PerLayerConfig of the quantized layers (JSON), so qtorch.load_config(path) can rebuild the
                   model skeleton (e.g. on the meta device) before loading;
  "aliases"        {name: name it shares storage with}: tensors shared by tied layers are stored once.
Loading is bit-exact. Into a model built on the meta device, load_state_dict(assign=True) is used.
Names are stored without torch.compile's `_orig_mod.` components, so a checkpoint saved from a compiled model loads
into an uncompiled one and the other way round (checkpoints written with the prefix load too).
"""
import json
import os

import torch
import torch.nn as nn

from qtorch.api.layers import canonical_name, check_model
from qtorch.api.sharded_state import full_state_dict, shard_like, write_on_rank0
from qtorch.config import PerLayerConfig
from qtorch.nn.base import QuantLinear

FORMAT_VERSION = "1"


def quantized_config(model: nn.Module) -> PerLayerConfig:
    """The PerLayerConfig that rebuilds the QuantLinear layers of `model` (every other layer left float)."""
    return PerLayerConfig({canonical_name(name): m.config for name, m in model.named_modules(remove_duplicate=False)
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
    """Write model.state_dict() and the quantization config to a .safetensors file (its folder is created if
    missing). A torch.compile'd model is saved under its uncompiled names. A model sharded with FSDP2: every rank
    calls it, the shards are gathered and rank 0 writes."""
    from safetensors.torch import save_file

    check_model(model)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OSError(f"path: cannot create the folder {folder} for {path}: {exc.strerror}") from exc
    state_dict = full_state_dict(model.state_dict())  # FSDP2 shards gathered (every rank calls)
    tensors, aliases = _dedupe({canonical_name(name): t for name, t in state_dict.items()})
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


def _stored_config(metadata: dict) -> PerLayerConfig:
    config = PerLayerConfig.from_dict(json.loads(metadata["config"]))
    return PerLayerConfig({canonical_name(name): cfg for name, cfg in config.layers.items()}, config.default)


def load_config(path) -> PerLayerConfig:
    """The PerLayerConfig stored in a checkpoint: quantize_(model, load_config(path)) rebuilds its layers (layer
    names without torch.compile's `_orig_mod.`: it applies to the compiled and the uncompiled model alike)."""
    return _stored_config(_metadata(path))


def _check_device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {device} requested but CUDA is not available (torch {torch.__version__}); "
                           "load with device='cpu'")
    return device


def load_quantized(model: nn.Module, path, *, device=None, strict: bool = True):
    """Load a save_quantized checkpoint into `model`, whose layers must already be quantized with the same configs
    (quantize_(model, load_config(path)); on the meta device for a model too big to build twice).

    Tensors are read onto `device` (default: the model's device, or cpu for a meta model) and assigned
    (load_state_dict(assign=True)) when the model holds meta tensors, copied into it otherwise.
    `model` may be torch.compile'd or not, whichever way the checkpoint was saved. A model sharded with FSDP2:
    every rank reads the file and keeps its shard of each sharded parameter.
    Returns load_state_dict's (missing_keys, unexpected_keys)."""
    from safetensors.torch import load_file

    check_model(model)
    if device is not None:
        device = _check_device(device)
    metadata = _metadata(path)
    config = _stored_config(metadata)
    modules = {canonical_name(name): m for name, m in model.named_modules(remove_duplicate=False)}
    for name, cfg in config.layers.items():
        if not isinstance(modules.get(name), QuantLinear):
            found = type(modules[name]).__name__ if name in modules else "no such module"
            raise ValueError(f"{name}: the checkpoint holds a layer quantized with {cfg!r}, the model has {found}; "
                             "run qtorch.quantize_(model, qtorch.load_config(path)) first")
    own = model.state_dict()
    model_names = {canonical_name(name): name for name in own}  # stored name -> this model's name
    tensors = list(own.values())
    on_meta = any(t.device.type == "meta" for t in tensors)
    if device is None:
        real = [t.device for t in tensors if t.device.type != "meta"]
        device = real[0] if real else torch.device("cpu")
    state_dict = load_file(str(path), device=str(device))
    for name, source in json.loads(metadata["aliases"]).items():
        state_dict[name] = state_dict[source]
    state_dict = {model_names.get(canonical_name(name), name): t for name, t in state_dict.items()}
    state_dict = shard_like(state_dict, model.state_dict())  # this rank's shard of each FSDP2 parameter
    return model.load_state_dict(state_dict, strict=strict, assign=on_meta)
