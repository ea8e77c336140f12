import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qtorch.quant import pack, unpack


@given(seed=st.integers(0, 2**31), bits=st.sampled_from([2, 4, 8]), signed=st.booleans(),
       rows=st.integers(1, 5), cols=st.integers(1, 6))
def test_pack_unpack_round_trip(seed, bits, signed, rows, cols):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1))) if signed else (0, 1 << bits)
    q = torch.randint(lo, hi, (rows, cols * 4), generator=g).to(torch.int8 if signed else torch.uint8)
    packed = pack(q, bits, signed=signed)
    assert packed.shape == (rows, cols * bits // 2)
    assert torch.equal(unpack(packed, bits, signed=signed), q)


def test_int4_layout_is_low_nibble_first():
    q = torch.tensor([[1, -1, -8, 7]], dtype=torch.int8)
    packed = pack(q, 4)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [[0x01 | 0xF0, 0x08 | 0x70]]


def test_int2_layout_is_lowest_bits_first():
    q = torch.tensor([[1, -2, 0, -1]], dtype=torch.int8)  # 01, 10, 00, 11
    assert pack(q, 2).tolist() == [[0b11_00_10_01]]


def test_pack_rejects_out_of_range_and_ragged_input():
    with pytest.raises(ValueError, match="values must lie in"):
        pack(torch.tensor([[8, 0]], dtype=torch.int8), 4)
    with pytest.raises(ValueError, match="multiple of 2"):
        pack(torch.tensor([[1, 2, 3]], dtype=torch.int8), 4)
    with pytest.raises(ValueError, match="bits"):
        pack(torch.zeros(1, 4, dtype=torch.int8), 3)
    with pytest.raises(TypeError, match="uint8"):
        unpack(torch.zeros(1, 4, dtype=torch.int8), 4)
