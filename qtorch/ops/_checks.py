"""Shape / dtype / device checks of op arguments; they read metadata only, so they also run on fake tensors."""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED, tiled_chunk, tiled_shape, tiled_supported

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


def check_vector(name: str, t: torch.Tensor | None, length: int, dtypes, like: torch.Tensor,
                 per_tensor: bool = False) -> None:
    """A 1-D tensor of `length` values (or None); per_tensor=True also accepts (1,): one value for every row."""
    if t is None:
        return
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(_name(d) for d in dtypes)}, got {_name(t.dtype)}")
    if tuple(t.shape) != (length,) and not (per_tensor and tuple(t.shape) == (1,)):
        also = " per row or (1,) per tensor" if per_tensor else ""
        raise ValueError(f"{name}: expected shape ({length},){also}, got {tuple(t.shape)}")
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


@dataclass(frozen=True)
class PackedLayout:
    """How a packed weight of N rows, K columns and `bits` is stored: w_q's shape and dtype, K from w_q's columns, and
    whether (bits, K, g) can be stored this way (None: yes; else the reason)."""

    packing: Callable[[int, int, int], tuple[tuple[int, int], torch.dtype]]  # (N, K, bits) -> (shape, dtype)
    columns: Callable[[int, int], int]  # (w_q columns, bits) -> K
    refuses: Callable[[int, int, int], str | None]  # (bits, K, g) -> reason or None


def _rowmajor_packing(n, k, bits):
    return (n, packed_cols(k, bits)), torch.uint8 if bits == 4 else torch.int8


def _tiled_refuses(bits, k, group_size):
    if tiled_supported(bits, k, group_size):
        return None
    return f"the tiled layout needs K and the group size multiples of {tiled_chunk(bits)} (or g = K)"


# qtorch.quant.layout's layouts: 0 row-major along K (int4 two per byte, low nibble first; int8 as is), 1 tiled for
# the mixed-input GEMM (int32 (ceil(N/16), K/CK·128)).
PACKED_LAYOUTS = {
    LAYOUT_ROWMAJOR: PackedLayout(_rowmajor_packing, lambda cols, bits: cols * 8 // bits, lambda *_: None),
    LAYOUT_TILED: PackedLayout(lambda n, k, bits: (tiled_shape(bits, n, k), torch.int32),
                               lambda cols, bits: cols // 128 * tiled_chunk(bits), _tiled_refuses),
}


def check_layout(layout: int) -> PackedLayout:
    if layout not in PACKED_LAYOUTS:
        raise ValueError(f"layout: expected one of {sorted(PACKED_LAYOUTS)} (qtorch.quant.layout), got {layout}")
    return PACKED_LAYOUTS[layout]


def check_packed_weight(q, scale, zero_point, bits: int, group_size: int, n: int, k: int, layout: int, like,
                        names=("w_q", "w_scale", "w_zp")) -> None:
    """A group-quantized weight of N rows and K columns: q packed in `layout`, scale (N, K/g) fp32, zero point
    (N, K/g) int8, all on like's device."""
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits}")
    packed = check_layout(layout)
    shape, dtype = packed.packing(n, k, bits)
    check_matrix(names[0], q, (dtype,))
    if tuple(q.shape) != shape:
        raise ValueError(f"{names[0]}: expected shape {shape} for N={n}, K={k}, bits={bits}, layout={layout}, got "
                         f"{tuple(q.shape)}")
    check_device(names[0], q, like)
    check_bits_group(bits, group_size, k)
    reason = packed.refuses(bits, k, group_size)
    if reason is not None:
        raise ValueError(f"{names[0]}: {reason}, got K={k}, group_size={group_size}")
    groups = (n, k // group_size)
    for name, t, dt in ((names[1], scale, torch.float32), (names[2], zero_point, torch.int8)):
        check_matrix(name, t, (dt,))
        if tuple(t.shape) != groups:
            raise ValueError(f"{name}: expected shape {groups} for K={k}, group_size={group_size}, got "
                             f"{tuple(t.shape)}")
        check_device(name, t, like)
