"""Bit packing of sub-byte integers along the last dimension, bit-exact both ways.

int4: byte = (q[2j] & 0xF) | (q[2j+1] & 0xF) << 4            (two per byte, low nibble first)
int2: byte = Σ_{i<4} (q[4j+i] & 0x3) << 2i                     (four per byte, lowest bits first)
Signed values are stored in two's complement and sign-extended on unpacking.
"""
import torch

from qtorch.quant._validate import check_tensor, has_values

PACKABLE_BITS = (2, 4, 8)


def _check(q: torch.Tensor, bits: int, signed: bool):
    check_tensor("q", q)
    if bits not in PACKABLE_BITS:
        raise ValueError(f"bits: expected one of {PACKABLE_BITS}, got {bits}")
    if q.dtype not in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        raise TypeError(f"q: expected an integer tensor, got {q.dtype}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if q.numel() and has_values(q) and (int(q.min()) < lo or int(q.max()) > hi):
        raise ValueError(f"q: values must lie in [{lo}, {hi}] for {'signed' if signed else 'unsigned'} {bits}-bit "
                         f"packing, got [{int(q.min())}, {int(q.max())}]")
    per_byte = 8 // bits
    if q.dim() == 0 or q.shape[-1] % per_byte:
        raise ValueError(f"q: the last dimension must be a multiple of {per_byte} to pack {bits}-bit values, "
                         f"got shape {tuple(q.shape)}")


def pack(q: torch.Tensor, bits: int, signed: bool = True) -> torch.Tensor:
    """(..., K) integers in the N-bit range -> (..., K * bits / 8) uint8 (bits=8: the int8/uint8 values unchanged)."""
    _check(q, bits, signed)
    if bits == 8:
        return q.to(torch.int8 if signed else torch.uint8)
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    fields = (q.to(torch.int32) & mask).reshape(*q.shape[:-1], q.shape[-1] // per_byte, per_byte)
    shifts = torch.arange(0, 8, bits, device=q.device, dtype=torch.int32)
    return (fields << shifts).sum(dim=-1).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, signed: bool = True) -> torch.Tensor:
    """Inverse of pack: (..., K * bits / 8) uint8 -> (..., K) int8 (signed) or uint8."""
    check_tensor("packed", packed)
    if bits not in PACKABLE_BITS:
        raise ValueError(f"bits: expected one of {PACKABLE_BITS}, got {bits}")
    if bits == 8:
        if packed.dtype not in (torch.int8, torch.uint8):
            raise TypeError(f"packed: expected int8 or uint8 for 8-bit values, got {packed.dtype}")
        return packed.to(torch.int8 if signed else torch.uint8)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed: expected uint8, got {packed.dtype}")
    mask = (1 << bits) - 1
    shifts = torch.arange(0, 8, bits, device=packed.device, dtype=torch.int32)
    fields = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & mask  # (..., K/per_byte, per_byte)
    if signed:
        fields = fields - ((fields >> (bits - 1)) << bits)  # two's complement sign extension
    return fields.reshape(*packed.shape[:-1], -1).to(torch.int8 if signed else torch.uint8)


def container_bits(bits: int) -> int:
    """Smallest packable container (2, 4 or 8 bits) that holds an N-bit value."""
    for c in PACKABLE_BITS:
        if bits <= c:
            return c
    raise ValueError(f"bits: expected at most 8, got {bits}")
