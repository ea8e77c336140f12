"""The qtorch:: operator library and the warn-once helper for slow paths."""
import warnings

import torch

LIB = torch.library.Library("qtorch", "FRAGMENT")  # schemas defined here; CUDA kernels added by qtorch._C

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn the first time a slow path runs (never silently slow, never noisy)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True
