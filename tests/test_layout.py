"""The tiled weight layout (qtorch.quant.layout): bit-exact round trips and the documented field positions."""
import pytest
import torch

from qtorch.quant.layout import pack_tiled, tiled_chunk, tiled_shape, tiled_supported, unpack_tiled


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n,k_chunks", [(1, 1), (16, 2), (17, 3), (200, 1), (33, 4)])
def test_round_trip_is_exact(bits, n, k_chunks):
    k = k_chunks * tiled_chunk(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.randint(lo, hi + 1, (n, k), dtype=torch.int8)
    packed = pack_tiled(q, bits)
    assert packed.dtype == torch.int32 and tuple(packed.shape) == tiled_shape(bits, n, k)
    assert torch.equal(unpack_tiled(packed, bits, n, k), q)


@pytest.mark.parametrize("bits", [4, 8])
def test_field_positions_follow_the_fragment_order(bits):
    """Word j of lane (g, t), field p holds q[row, k] per the docstring's formula (checked on a few fields by hand)."""
    ck = tiled_chunk(bits)
    n, k = 32, 2 * ck
    q = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (n, k), dtype=torch.int8)
    packed = pack_tiled(q, bits).view(2, 2, 32, 4)  # (tile, chunk, lane, word)
    mask, offset = (1 << bits) - 1, 1 << (bits - 1)

    def field(tile, chunk, lane, j, p):
        return ((int(packed[tile, chunk, lane, j]) >> (bits * p)) & mask) - offset

    tile, chunk, lane = 1, 1, 13  # g = 3, t = 1
    g, t = lane // 4, lane % 4
    kb = ck * chunk + (ck // 4) * t
    if bits == 4:  # word 2 = k-step 2; field 5 = (a_1, second half): row g + 8, k = kb + 8 + 1
        assert field(tile, chunk, lane, 2, 5) == q[16 * tile + g + 8, kb + 8 + 1]
        assert field(tile, chunk, lane, 0, 2) == q[16 * tile + g, kb + 2]  # a_2 first half
    else:  # word 3 = k-step 1, registers a_2 / a_3; byte 3 = a_3 second half: row g + 8, k = kb + 4 + 3
        assert field(tile, chunk, lane, 3, 3) == q[16 * tile + g + 8, kb + 4 + 3]
        assert field(tile, chunk, lane, 0, 1) == q[16 * tile + g, kb + 1]  # a_0 second half


def test_padded_rows_hold_zero():
    q = torch.full((3, 64), -8, dtype=torch.int8)
    full = unpack_tiled(pack_tiled(q, 4), 4, 16, 64)  # read the padding rows back
    assert torch.equal(full[:3], q) and not full[3:].any()


def test_supported_shapes():
    assert tiled_supported(4, 4096, 128) and tiled_supported(4, 4096, 4096) and tiled_supported(8, 4096, 32)
    assert not tiled_supported(4, 4096, 32)  # a group must be whole chunks of 64
    assert not tiled_supported(8, 100, 100)  # K a multiple of 32
    with pytest.raises(ValueError, match="multiple of 64"):
        pack_tiled(torch.zeros(4, 96, dtype=torch.int8), 4)


def _layer(seed=0):
    import torch.nn as nn

    from qtorch.config import GroupWeightOnlyConfig
    from qtorch.nn import QuantLinear

    torch.manual_seed(seed)
    return QuantLinear.from_float(nn.Linear(128, 40), GroupWeightOnlyConfig(bits=4, group_size=64, symmetric=False))


def test_rowmajor_checkpoint_converts_on_load():
    """A checkpoint written before layouts were recorded (row-major w_q, no w_layout) loads bit-exactly."""
    from qtorch.ops.group import to_rowmajor
    from qtorch.quant.layout import LAYOUT_TILED

    layer = _layer()
    assert layer.layout == LAYOUT_TILED
    old = {name: t.clone() for name, t in layer.state_dict().items() if name != "w_layout"}
    old["w_q"] = to_rowmajor(layer.w_q, layer.w_scale, 4, layer.layout)  # (40, 64) uint8
    fresh = _layer(seed=1)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.w_q, layer.w_q) and int(fresh.w_layout) == LAYOUT_TILED
    x = torch.randn(3, 128)
    assert torch.equal(fresh(x), layer(x))


def test_unknown_layout_is_a_clear_error():
    layer = _layer()
    state = layer.state_dict()
    state["w_layout"] = torch.tensor(7, dtype=torch.uint8)
    with pytest.raises(ValueError, match="weight layout 7 is unknown"):
        _layer(seed=1).load_state_dict(state)
