"""Argument checks shared by the public functions: each raises TypeError/ValueError naming the argument."""
import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
GROUP_SIZES = (32, 64, 128, 256)


def check_tensor(name, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")


def check_float(name, x, dtypes=FLOAT_DTYPES):
    check_tensor(name, x)
    if x.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name}: expected a floating tensor ({allowed}), got {str(x.dtype).replace('torch.', '')}")


def check_dtype(name, x, dtype):
    check_tensor(name, x)
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {str(dtype).replace('torch.', '')}, got {str(x.dtype).replace('torch.', '')}")


def has_values(x) -> bool:
    """True when x holds real data we may read (not a fake/meta tensor under tracing or torch.compile)."""
    from torch._subclasses.fake_tensor import is_fake

    return not (x.device.type == "meta" or is_fake(x) or torch.compiler.is_compiling())


def check_finite(name, x):
    """Data to be quantized must be finite: a NaN or Inf would poison the scale of its whole group.

    Only checked where the values can be read (eager tensors); under tracing the check is left to the eager caller.
    """
    if x.numel() and has_values(x) and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(f"{name}: contains {n_nan} NaN and {n_inf} Inf values; data to be quantized must be finite")


def check_bits(name, bits, allowed=range(2, 9)):
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name}: expected an int bit width, got {type(bits).__name__}")
    if bits not in allowed:
        raise ValueError(f"{name}: expected a bit width in {list(allowed)}, got {bits}")


def check_ndim(name, x, ndim):
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(x.shape)}")


def check_axis(name, axis, ndim):
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}], got {axis}")
    return axis % ndim


def check_group_size(name, group_size, length, allowed=None):
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"{name}: expected a positive int group size, got {group_size!r}")
    if allowed is not None and group_size not in allowed:
        raise ValueError(f"{name}: expected a group size in {list(allowed)}, got {group_size}")
    if length % group_size:
        raise ValueError(f"{name}: the grouped dimension ({length}) is not divisible by group_size={group_size}")


def check_same_device(name, x, ref_name, ref):
    if x.device != ref.device:
        raise ValueError(f"{name}: expected a tensor on {ref.device} like {ref_name}, got {x.device}")
