"""Loads the optional CUDA extension qtorch._C, whose import registers the CUDA kernels of qtorch:: ops."""
import importlib

_loaded = None
_error = None


def load_extension() -> bool:
    """Import qtorch._C once; return whether it loaded. Never raises."""
    global _loaded, _error
    if _loaded is None:
        try:
            importlib.import_module("qtorch._C")
            _loaded = True
        except ImportError as exc:  # built without CUDA, or a CPU-only install
            _loaded, _error = False, exc
    return _loaded


def cuda_kernels_available() -> bool:
    """True when the hand-written CUDA kernels (qtorch._C) are loaded and a CUDA device is present."""
    import torch

    return load_extension() and torch.cuda.is_available()


def extension_error():
    """Why qtorch._C did not load (None if it did or was not tried)."""
    return _error
