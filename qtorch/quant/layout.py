"""Weight layouts of packed int4 / int8 weights, and the bit-exact conversions between them.

LAYOUT_ROWMAJOR (0): q (N, K·bits/8) row-major along K (qtorch.quant.packing: int4 two per byte, low nibble first).
LAYOUT_TILED (1): the order in which the mixed-input GEMM (csrc/mixed_gemm) feeds q to the tensor cores, so that each
    lane of a warp reads its whole share of a (16-row, CK-column) tile with one 16-byte load and a warp reads 512
    contiguous bytes. Stored as int32 (N_pad/16, K/CK · 128) with N_pad = N rounded up to 16 (zero rows) and
    CK = 64 (int4) or 32 (int8) values of K per tile; needs K % CK == 0. Word w = chunk·128 + lane·4 + j of tile row
    T holds 32/bits fields in offset binary (q + 2^(bits−1)); field p of word j of lane (g = lane // 4, t = lane % 4)
    is q[row, k] with
        int4: s = j,      i = p % 4,             h = p // 4
        int8: s = j // 2, i = 2 (j % 2) + p // 2, h = p % 2
        row = 16 T + g + 8 (i % 2),   k = CK·chunk + (CK/4)·t + 4 s + 2 (i // 2) + h.
    i is the mma.m16n8k16 A-fragment register a_i, h its half: k-step s of lane (g, t) multiplies the weights of rows
    g, g+8 at k = kb … kb+3 (kb = CK·chunk + (CK/4)·t + 4 s) with the activations x[token, kb … kb+3], which the same
    lane reads as consecutive values (this permutes K identically on both operands, leaving every dot product as is).
    Offset binary lets the kernel turn a field into a float by OR-ing it into a magic exponent (no int→float op).
"""
import functools
from dataclasses import dataclass

import torch

from qtorch.quant._validate import has_values

LAYOUT_ROWMAJOR = 0
LAYOUT_TILED = 1
LAYOUTS = (LAYOUT_ROWMAJOR, LAYOUT_TILED)


def tiled_chunk(bits: int) -> int:
    """CK: values of K per 16-byte lane load of the tiled layout."""
    return 64 if bits == 4 else 32


def tiled_supported(bits: int, in_features: int, group_size: int) -> bool:
    """Whether a weight of this shape can be stored tiled: K a multiple of CK, each group a whole number of chunks."""
    ck = tiled_chunk(bits)
    return bits in (4, 8) and in_features % ck == 0 and (group_size == in_features or group_size % ck == 0)


def storage_layout(bits: int, in_features: int, group_size: int) -> int:
    """The packed layout a weight of this shape is stored in: tiled when the shape allows it, else row-major."""
    return LAYOUT_TILED if tiled_supported(bits, in_features, group_size) else LAYOUT_ROWMAJOR


@dataclass(frozen=True)
class WeightLayout:
    """How a group-quantized weight is stored, decided once when a layer is built and passed to its ops on every
    call: bits (4 or 8), group size g along K (g = K: per channel), symmetric (Z = 0), and the packed layout
    (storage_layout: LAYOUT_TILED or LAYOUT_ROWMAJOR, recorded with the weight as `w_layout`)."""

    bits: int
    group_size: int
    symmetric: bool
    layout: int

    @classmethod
    def for_shape(cls, bits: int, in_features: int, group_size: int, symmetric: bool) -> "WeightLayout":
        return cls(bits, group_size, symmetric, storage_layout(bits, in_features, group_size))


def tiled_shape(bits: int, out_features: int, in_features: int) -> tuple[int, int]:
    """(N_pad / 16, K / CK · 128): the int32 shape of a tiled weight."""
    return (out_features + 15) // 16, in_features // tiled_chunk(bits) * 128


@functools.lru_cache(maxsize=None)
def _orders(bits: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(order, inverse) as Python ints: for each stored field of one (tile, chunk) in storage order, row·CK + k
    inside the tile; and for each (row, k) its field's position. Cached as ints, not tensors: a cached real tensor
    cannot enter torch.compile's fake-tensor tracing. Computed on the CPU whatever the default device (a
    `with torch.device("meta")` block, as transformers' from_pretrained builds its skeleton in, has no data)."""
    ck, fields = tiled_chunk(bits), 32 // bits
    lane = torch.arange(32, device="cpu").view(32, 1, 1)
    j = torch.arange(4, device="cpu").view(1, 4, 1)
    p = torch.arange(fields, device="cpu").view(1, 1, fields)
    g, t = lane // 4, lane % 4
    if bits == 4:
        s, i, h = j, p % 4, p // 4
    else:
        s, i, h = j // 2, 2 * (j % 2) + p // 2, p % 2
    row = g + 8 * (i % 2)
    k = (ck // 4) * t + 4 * s + 2 * (i // 2) + h
    order = (row * ck + k).reshape(-1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device="cpu")
    return tuple(order.tolist()), tuple(inverse.tolist())


# Real (not fake) order tensors by (bits, inverse, device), built once per device: an eager call then neither
# rebuilds a 1,024-entry tensor from Python ints (≈ 20–80 µs on the CPU box) nor copies it host-to-device (a host
# synchronisation, and not capturable in a CUDA graph). Under fake-tensor tracing a fresh tensor is built instead.
_order_tensors: dict[tuple, torch.Tensor] = {}


def _order_tensor(bits: int, inverse: bool, like: torch.Tensor) -> torch.Tensor:
    """(16·CK,) int64 on like's device: the storage order of one (tile, chunk) (see _orders), or its inverse."""
    if not has_values(like):
        return torch.tensor(_orders(bits)[inverse], dtype=torch.int64, device=like.device)
    key = (bits, inverse, like.device)
    if key not in _order_tensors:
        _order_tensors[key] = torch.tensor(_orders(bits)[inverse], dtype=torch.int64, device=like.device)
    return _order_tensors[key]


def pack_tiled(q: torch.Tensor, bits: int) -> torch.Tensor:
    """q (N, K) signed integers in the bits' range -> the tiled int32 layout (N_pad/16, K/CK·128)."""
    n, k = q.shape
    ck, fields = tiled_chunk(bits), 32 // bits
    if k % ck:
        raise ValueError(f"q: the tiled layout needs K a multiple of {ck} for {bits}-bit weights, got K={k}")
    tiles, chunks = (n + 15) // 16, k // ck
    u = torch.zeros((tiles * 16, k), dtype=torch.int64, device=q.device)
    u[:n] = q.to(torch.int64)
    u = (u + (1 << (bits - 1))) & ((1 << bits) - 1)  # offset binary; padded rows hold q = 0
    u = u.view(tiles, 16, chunks, ck).permute(0, 2, 1, 3).reshape(tiles, chunks, 16 * ck)
    u = u[:, :, _order_tensor(bits, False, q)].view(tiles, chunks, 32 * 4, fields)  # storage order
    shifts = torch.arange(0, 32, bits, device=q.device, dtype=torch.int64)
    words = (u << shifts).sum(dim=-1)  # (tiles, chunks, 128) in [0, 2^32)
    words = torch.where(words >= 1 << 31, words - (1 << 32), words)
    return words.to(torch.int32).view(tiles, chunks * 128)


def unpack_tiled(packed: torch.Tensor, bits: int, out_features: int, in_features: int) -> torch.Tensor:
    """The tiled int32 layout -> q (N, K) int8 (inverse of pack_tiled)."""
    ck, fields = tiled_chunk(bits), 32 // bits
    tiles, chunks = packed.shape[0], in_features // ck
    shifts = torch.arange(0, 32, bits, device=packed.device, dtype=torch.int32)
    u = ((packed.view(tiles, chunks, 128, 1) >> shifts) & ((1 << bits) - 1)).to(torch.int8)  # arithmetic shift, masked
    u = u.view(tiles, chunks, 16 * ck)[:, :, _order_tensor(bits, True, packed)]
    u = u.view(tiles, chunks, 16, ck).permute(0, 2, 1, 3).reshape(tiles * 16, in_features)
    return u[:out_features] - (1 << (bits - 1))
