"""Integer ranges of N-bit quantization: signed [-2^(N-1), 2^(N-1)-1], unsigned [0, 2^N-1]."""
from qtorch.quant._validate import check_bits


def qrange(bits: int, signed: bool = True) -> tuple[int, int]:
    """(q_min, q_max) of an N-bit integer, N = 2..8 (two's complement: 2 → [-2, 1], 4 → [-8, 7])."""
    check_bits("bits", bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1
