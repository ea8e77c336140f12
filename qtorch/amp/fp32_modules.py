"""Precision-sensitive modules that run in float32 inside a half-precision model.

Normalization (x / ‖x‖), softmax (e^x / Σ e^x) and losses divide by or sum over many terms, where half precision
loses the small terms or overflows. Such a module keeps its parameters (and buffers) in float32; a forward pre-hook
upcasts its half-precision floating inputs to float32 and a forward hook casts its float32 outputs back to the half
dtype, except for loss modules, whose output stays float32.
"""
import fnmatch

import torch
import torch.nn as nn
from torch.utils._pytree import tree_map

__all__ = ["DEFAULT_FP32_MODULES", "find_fp32_modules", "install_fp32_hooks"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)

# Types, or fnmatch patterns matched against a module's class name and its qualified name in the model.
DEFAULT_FP32_MODULES = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm,
    nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d,
    nn.modules.loss._Loss,
    "*Norm",  # RMSNorm-like classes of any model (qtorch.models.llama.RMSNorm, LlamaRMSNorm, ...)
)


def _check_spec(fp32_modules) -> tuple:
    if isinstance(fp32_modules, (str, type)):
        fp32_modules = (fp32_modules,)
    try:
        spec = tuple(fp32_modules)
    except TypeError:
        raise TypeError(f"fp32_modules: expected an iterable of nn.Module types or name patterns, "
                        f"got {type(fp32_modules).__name__}") from None
    for item in spec:
        if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, nn.Module))):
            raise TypeError(f"fp32_modules: expected nn.Module subclasses or str patterns, got {item!r}")
    return spec


def _matches(name: str, module: nn.Module, spec: tuple) -> bool:
    for item in spec:
        if isinstance(item, type):
            if isinstance(module, item):
                return True
        elif fnmatch.fnmatchcase(type(module).__name__, item) or fnmatch.fnmatchcase(name, item):
            return True
    return False


def find_fp32_modules(model: nn.Module, fp32_modules) -> dict[str, nn.Module]:
    """The outermost modules of ``model`` matched by ``fp32_modules`` (their submodules run in fp32 with them)."""
    spec = _check_spec(fp32_modules)
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if any(name.startswith(root + ".") for root in found if root):
            continue  # inside a module already running in fp32
        if module is not model and _matches(name, module, spec):
            found[name] = module
    return found


def _upcast(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in _HALF_DTYPES else x


def install_fp32_hooks(module: nn.Module, half_dtype: torch.dtype) -> list:
    """Hooks making ``module`` take float32 inputs and (unless it is a loss) return ``half_dtype`` outputs."""

    def upcast_inputs(mod, args, kwargs):
        return tree_map(_upcast, args), tree_map(_upcast, kwargs)

    def downcast(x):
        return x.to(half_dtype) if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x

    def downcast_outputs(mod, args, output):
        return tree_map(downcast, output)

    handles = [module.register_forward_pre_hook(upcast_inputs, with_kwargs=True)]
    if not isinstance(module, nn.modules.loss._Loss):
        handles.append(module.register_forward_hook(downcast_outputs))
    return handles
