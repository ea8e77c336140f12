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


def canonical_packing(n: int, k: int, bits: int):
    """Layout 0: row-major (N, K·bits/8); int4 two per byte (low nibble = even k) as uint8, int8 as int8."""
    return (n, packed_cols(k, bits)), torch.uint8 if bits == 4 else torch.int8


# Packed weight layouts: id -> (N, K, bits) -> (w_q shape, w_q dtype). Layout 1 (tiled, qtorch.quant.layout) joins here.
PACKED_LAYOUTS = {0: canonical_packing}


def check_packed_weight(q, scale, zero_point, bits: int, group_size: int, n: int, k: int, layout: int, like,
                        names=("w_q", "w_scale", "w_zp")) -> None:
    """A group-quantized weight of N rows and K columns: q packed in `layout`, scale (N, K/g) fp32, zero point
    (N, K/g) int8, all on like's device."""
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits}")
    if layout not in PACKED_LAYOUTS:
        raise ValueError(f"layout: expected one of {sorted(PACKED_LAYOUTS)}, got {layout}")
    shape, dtype = PACKED_LAYOUTS[layout](n, k, bits)
    check_matrix(names[0], q, (dtype,))
    if tuple(q.shape) != shape:
        raise ValueError(f"{names[0]}: expected shape {shape} for N={n}, K={k}, bits={bits}, layout={layout}, got "
                         f"{tuple(q.shape)}")
    check_device(names[0], q, like)
    check_bits_group(bits, group_size, k)
    groups = (n, k // group_size)
    for name, t, dt in ((names[1], scale, torch.float32), (names[2], zero_point, torch.int8)):
        check_matrix(name, t, (dt,))
        if tuple(t.shape) != groups:
            raise ValueError(f"{name}: expected shape {groups} for K={k}, group_size={group_size}, got "
                             f"{tuple(t.shape)}")
        check_device(name, t, like)
