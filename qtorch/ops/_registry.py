"""The qtorch:: operator library, the warn-once helper for slow paths, and the backends every op shares."""
import functools
import warnings

import torch

from qtorch.ops import routing

LIB = torch.library.Library("qtorch", "FRAGMENT")  # private schemas; their CUDA kernels come from qtorch._C

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn the first time a slow path runs (never silently slow, never noisy)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_ready(device: str) -> tuple[bool, str]:
    """Whether Triton kernels run on `device`: CUDA with triton installed, or CPU under TRITON_INTERPRET=1."""
    if not triton_available():
        return False, "triton is not installed"
    from triton_kernels._common import interpreting

    if device != "cuda" and not interpreting():
        return False, "Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 on CPU)"
    return routing.YES


def always(**meta) -> tuple[bool, str]:
    return routing.YES


def reference_backend(reference, can_implement=always) -> routing.Backend:
    """The PyTorch reference as the CPU backend (first in each table: CPU calls never pick Triton's interpreter
    unless forced)."""
    return routing.Backend("reference", ("cpu",), can_implement, reference)


def reference_on_cuda(op_name: str, reference, missing: str, can_implement=always) -> routing.Backend:
    """The reference as the last resort on CUDA, said once (`missing` says why no kernel runs)."""
    def run(*args):
        warn_once(op_name, f"qtorch: {missing}; {op_name} runs the slow PyTorch reference on CUDA")
        return reference(*args)

    return routing.Backend("reference_cuda", ("cuda",), can_implement, run)
