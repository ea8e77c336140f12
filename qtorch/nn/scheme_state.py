"""The scheme a QuantLinear was built with, stored in its state_dict as a uint8 tensor of JSON bytes (`qscheme`).

A plain tensor (not `_extra_state`) so that safetensors can hold it; compared on load so that a checkpoint of
another scheme is a clear error instead of a shape mismatch or, worse, a silent wrong answer.
"""
import json

import torch

from qtorch.config import QuantConfig, config_from_dict


def encode_scheme(config: QuantConfig) -> torch.Tensor:
    """(L,) uint8: the UTF-8 bytes of the config's JSON."""
    data = json.dumps(config.to_dict(), sort_keys=True).encode()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_scheme(t: torch.Tensor) -> QuantConfig:
    """Inverse of encode_scheme."""
    if t.dtype != torch.uint8 or t.dim() != 1:
        raise ValueError(f"qscheme: expected a 1-D uint8 tensor of JSON bytes, got {t.dtype} {tuple(t.shape)}")
    try:
        return config_from_dict(json.loads(bytes(t.cpu().tolist()).decode()))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"qscheme: not a qtorch scheme record ({exc})") from exc
