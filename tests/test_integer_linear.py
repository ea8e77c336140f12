"""Integer-only linear: q_Y = M·(Σq_Wq_X − Z_WΣq_X − Z_XΣq_W + K·Z_W·Z_X) + Z_Y with M = M0·2^−31·2^−n."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qtorch.quant import (compute_qparams, integer_linear, integer_linear_int64, prepare_integer_linear, quantize,
                          quantize_multiplier, requantize, rounding_divide_by_pot, srdhm)


@given(m=st.floats(min_value=1e-9, max_value=1e6, allow_nan=False))
def test_quantize_multiplier_represents_m(m):
    m0, n = quantize_multiplier(m)
    assert 2**30 <= int(m0) < 2**31
    assert math.isclose(int(m0) * 2.0 ** (-31 - int(n)), m, rel_tol=2**-30)


def test_multiplier_that_rounds_up_to_2_pow_31():
    m = 1 - 2**-33  # mantissa·2^31 = 2^31 − 0.25 rounds to 2^31: renormalise to 2^30 and one more power of two
    m0, n = quantize_multiplier(m)
    assert int(m0) == 2**30 and int(n) == -1
    assert int(m0) * 2.0 ** (-31 - int(n)) == 1.0


def test_multiplier_at_least_one_uses_a_left_shift():
    m0, n = quantize_multiplier(3.7)
    assert int(n) == -2
    acc = torch.tensor([[10, -10, 33]], dtype=torch.int32)
    q = requantize(acc, m0, n, 0)
    assert q.tolist() == [[37, -37, 122]]  # round(3.7·33) = 122.1 → 122


def test_srdhm_and_rdpot_match_gemmlowp_semantics():
    a = torch.tensor([2**31 - 1, -(2**31), -(2**31), 12345, -12345, 3], dtype=torch.int32)
    b = torch.tensor([2**31 - 1, -(2**31), 2**30, 2**30, 2**30, 2**30], dtype=torch.int32)
    # (a·b + 2^30) / 2^31 for a·b ≥ 0, (a·b + 1 − 2^30)/2^31 truncated otherwise, i.e. ties round up
    # (6172.5 → 6173, −6172.5 → −6172); INT32_MIN² saturates.
    assert srdhm(a, b).tolist() == [2**31 - 2, 2**31 - 1, -(2**30), 6173, -6172, 2]
    x = torch.tensor([5, -5, 6, -6, 7, -7, 4, -4], dtype=torch.int32)
    # x / 4 rounded half away from zero: 1.25→1, 1.5→2, 1.75→2, 1→1
    assert rounding_divide_by_pot(x, torch.tensor(2)).tolist() == [1, -1, 2, -2, 2, -2, 1, -1]


def test_ties_agree_between_the_two_implementations():
    """Accumulators chosen so that x·M0/2^31 and x/2^n land exactly on .5, both signs."""
    w = torch.tensor([[0.5, -0.25, 1.0, 0.75]])
    layer = prepare_integer_linear(w, 1.0, 0, 1.0, 0)
    for m0, n in ((2**30, 0), (2**30, 3), (3 * 2**28, 2)):  # M = 1/2, 1/16, 3/32
        layer.multiplier = torch.tensor([m0], dtype=torch.int32)
        layer.shift = torch.tensor([n], dtype=torch.int32)
        x_q = torch.arange(-128, 128, dtype=torch.int8)[:, None].expand(256, 4).contiguous()
        assert torch.equal(integer_linear(x_q, layer), integer_linear_int64(x_q, layer))


def test_requantize_saturates():
    m0, n = quantize_multiplier(0.5)
    acc = torch.tensor([[1000, -1000, 2**31 - 1, -(2**31)]], dtype=torch.int32)
    assert requantize(acc, m0, n, 5).tolist() == [[127, -128, 127, -128]]
    m0, n = quantize_multiplier(2.0**20)  # left shift overflows int32: saturate before the multiply
    acc = torch.tensor([[2**20, -(2**20)]], dtype=torch.int32)
    assert requantize(acc, m0, n, 0).tolist() == [[127, -128]]


def _layer(n_out, k, symmetric, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, k, generator=g) * 0.05 + (0 if symmetric else 0.02)
    x = torch.randn(9, k, generator=g).abs() * 2.0  # post-ReLU-like: asymmetric activations
    x_scale, x_zp = compute_qparams(x, 8)
    y = x @ w.T + (0 if bias is None else bias)
    y_scale, y_zp = compute_qparams(y, 8)
    layer = prepare_integer_linear(w, float(x_scale), int(x_zp), float(y_scale), int(y_zp), bias=bias,
                                   symmetric=symmetric)
    x_q = quantize(x, x_scale, x_zp, 8)
    return layer, x_q


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("with_bias", [False, True])
def test_int32_path_bit_exact_with_plain_int64_and_within_1_lsb_of_float(symmetric, with_bias):
    bias = torch.randn(24) * 0.1 if with_bias else None
    layer, x_q = _layer(24, 96, symmetric, bias)
    if not symmetric:
        assert bool((layer.w_zp != 0).any())  # exercises the Z_W Σ q_X and K·Z_W·Z_X terms
    q_y = integer_linear(x_q, layer)
    assert q_y.dtype == torch.int8
    assert torch.equal(q_y, integer_linear_int64(x_q, layer))
    # Float computation of the same integer expression: exact accumulator, real multiplier, round, clamp.
    acc = ((x_q.double() - layer.x_zp) @ (layer.w_q.double() - layer.w_zp.double()[:, None]).T)
    if layer.bias_q is not None:
        acc = acc + layer.bias_q.double()
    m = layer.w_scale.double() * layer.x_scale / layer.y_scale
    y_float = torch.clamp(torch.round(acc * m + layer.y_zp), -128, 127)
    assert int((q_y.double() - y_float).abs().max()) <= 1


def test_weight_side_sums_are_precomputed():
    layer, _ = _layer(8, 32, symmetric=False, bias=None)
    assert torch.equal(layer.w_colsum, layer.w_q.to(torch.int32).sum(1))
    expected = -layer.x_zp * layer.w_colsum + 32 * layer.w_zp * layer.x_zp
    assert torch.equal(layer.const, expected.to(torch.int32))


@given(seed=st.integers(0, 2**31), k=st.integers(1, 64), n_out=st.integers(1, 16), symmetric=st.booleans())
def test_random_layers_bit_exact(seed, k, n_out, symmetric):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, k, generator=g)
    layer = prepare_integer_linear(w, 0.02, int(torch.randint(-128, 128, (), generator=g)), 0.05,
                                   int(torch.randint(-128, 128, (), generator=g)), symmetric=symmetric)
    x_q = torch.randint(-128, 128, (5, k), generator=g, dtype=torch.int8)
    assert torch.equal(integer_linear(x_q, layer), integer_linear_int64(x_q, layer))


def test_bad_input():
    w = torch.randn(4, 8)
    with pytest.raises(ValueError, match="x_scale"):
        prepare_integer_linear(w, 0.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="y_zp"):
        prepare_integer_linear(w, 1.0, 0, 1.0, 300)
    with pytest.raises(ValueError, match="NaN"):
        prepare_integer_linear(torch.tensor([[float("nan")] * 8] * 4), 1.0, 0, 1.0, 0)
    layer = prepare_integer_linear(w, 0.1, 0, 0.1, 0)
    with pytest.raises(TypeError, match="int8"):
        integer_linear(torch.zeros(2, 8), layer)
    with pytest.raises(ValueError, match="8 columns"):
        integer_linear(torch.zeros(2, 7, dtype=torch.int8), layer)
    with pytest.raises(ValueError, match="multiplier"):
        quantize_multiplier(-1.0)
