"""Shape / dtype / device checks of op arguments; they read metadata only, so they also run on fake tensors."""
import torch

ACT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _name(dt):
    return str(dt).replace("torch.", "")


def check_matrix(name: str, t: torch.Tensor, dtypes, cols: int | None = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(_name(d) for d in dtypes)}, got {_name(t.dtype)}")
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor, got shape {tuple(t.shape)}")
    if cols is not None and t.shape[1] != cols:
        raise ValueError(f"{name}: expected {cols} columns, got shape {tuple(t.shape)}")


def check_vector(name: str, t: torch.Tensor | None, length: int, dtypes, like: torch.Tensor) -> None:
    if t is None:
        return
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(_name(d) for d in dtypes)}, got {_name(t.dtype)}")
    if tuple(t.shape) != (length,):
        raise ValueError(f"{name}: expected shape ({length},), got {tuple(t.shape)}")
    check_device(name, t, like)


def check_device(name: str, t: torch.Tensor, like: torch.Tensor) -> None:
    if t.device != like.device:
        raise ValueError(f"{name}: expected a tensor on {like.device}, got {t.device}")


def check_bits_group(bits: int, group_size: int, k: int, allowed_bits=(4, 8)) -> None:
    if bits not in allowed_bits:
        raise ValueError(f"bits: expected one of {allowed_bits}, got {bits}")
    if group_size <= 0 or k % group_size:
        raise ValueError(f"group_size: expected a positive divisor of K={k}, got {group_size}")
    if bits == 4 and k % 2:
        raise ValueError(f"K: int4 packing needs an even number of columns, got {k}")


def packed_cols(k: int, bits: int) -> int:
    """Bytes per row of a packed weight: K·bits/8."""
    return k * bits // 8
