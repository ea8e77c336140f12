"""The qtorch:: operator library, the eager dispatch of the public ops, the warn-once helper for slow paths, and the
backends every op shares."""
import functools
import warnings

import torch

from qtorch._ext import load_extension
from qtorch.ops import routing

LIB = torch.library.Library("qtorch", "FRAGMENT")  # private schemas; their CUDA kernels come from qtorch._C
EAGER_DEVICES = ("CPU", "CUDA")


def register_eager_kernels(op, *, differentiable: bool = False) -> None:
    """Register the body of `op` (a custom_op / triton_op of this library: check, routing.select, run) as its CPU and
    CUDA kernels directly with the dispatcher. The custom_op still defines the op (schema, fake impl, autograd
    formula, torch.compile's decomposition of a triton_op); in eager the dispatcher then calls the body itself,
    without torch.library's per-call Python layers (its output-aliasing check and dynamo-disable wrapper).
    Ops without a backward formula (`differentiable=False`: they take and return integer or weight-side tensors and
    qtorch's layers never feed them a tensor that requires grad) also skip the Python autograd layer (a fallthrough:
    their outputs do not require grad); weight_only_linear and codebook_linear keep theirs (register_autograd).
    A triton_op's body (op._init_fn) already launches its Triton kernels directly on plain tensors. Measured on the
    CPU box: 27 µs -> 8 µs per call of an empty op (benchmarks/NOTES.md, "eager per-call overhead")."""
    body = op._init_fn  # the function the op was defined with (a triton_op's wraps it with wrap_triton off)
    for key in EAGER_DEVICES:
        LIB.impl(op._name, body, key)
        if not differentiable:
            LIB.impl(op._name, torch.library.fallthrough_kernel, "Autograd" + key)

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


# Why a backend that calls qtorch._C cannot run (its routing reason and its once-said fallback warning).
NO_EXTENSION = "the CUDA extension qtorch._C is not built (reinstall with nvcc and a CUDA build of torch)"


def extension_ready(**meta) -> tuple[bool, str]:
    """Whether the CUDA kernels of qtorch._C are loaded (every backend that calls them asks this)."""
    return routing.YES if load_extension() else (False, NO_EXTENSION)


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
