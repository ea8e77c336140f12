"""Property tests of affine quantization: round trips and the |r − r̂| ≤ S/2 bound inside the range."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qtorch.quant import compute_qparams, dequantize, fake_quantize, quantize, quantize_tensor, sqnr_db

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")

shapes = st.tuples(st.integers(1, 6), st.integers(1, 5)).map(lambda s: (s[0], s[1] * 8))


def _data(seed, shape, spread):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * spread + torch.randn((), generator=g) * spread


@given(seed=st.integers(0, 2**31), shape=shapes, bits=st.integers(2, 8), symmetric=st.booleans(),
       granularity=st.sampled_from(["tensor", "channel", "group"]), spread=st.sampled_from([1e-3, 1.0, 50.0]))
def test_error_bounded_by_half_scale(seed, shape, bits, symmetric, granularity, spread):
    x = _data(seed, shape, spread)
    kw = dict(symmetric=symmetric, granularity=granularity, group_size=8 if granularity == "group" else None)
    t = quantize_tensor(x, bits, **kw)
    gs = t.group_size
    scale = t.scale if gs is None else t.scale.repeat_interleave(gs, dim=-1)
    err = (x - t.dequantize()).abs()
    # Every value lies inside the representable range: asymmetric ranges span [min(r, 0), max(r, 0)] and symmetric
    # ones [−|r|max, |r|max]; so rounding to the nearest level errs by at most S/2 (plus float32 rounding).
    assert bool((err <= scale.expand_as(x) * 0.5 * (1 + 1e-5) + 1e-12).all())


@given(seed=st.integers(0, 2**31), shape=shapes, bits=st.integers(2, 8), symmetric=st.booleans())
def test_round_trip_is_idempotent(seed, shape, bits, symmetric):
    """Quantizing already-quantized values with the same (S, Z) gives the same integers back."""
    x = _data(seed, shape, 1.0)
    scale, zp = compute_qparams(x, bits, symmetric=symmetric, granularity="channel")
    q = quantize(x, scale, zp, bits)
    q2 = quantize(dequantize(q, scale, zp), scale, zp, bits)
    assert torch.equal(q, q2)


@given(seed=st.integers(0, 2**31), bits=st.integers(2, 8))
def test_range_is_used_and_respected(seed, bits):
    x = _data(seed, (4, 32), 3.0)
    t = quantize_tensor(x, bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    assert int(t.q.min()) >= lo and int(t.q.max()) <= hi
    assert int(t.q.min()) == lo or int(t.q.max()) == hi  # an extreme of the data lands on an end of the range


def test_more_bits_less_error_and_finer_granularity_less_error():
    x = torch.randn(64, 256) * torch.logspace(-2, 1, 64)[:, None]  # rows of very different magnitude
    by_bits = [sqnr_db(x, fake_quantize(x, b, granularity="channel")) for b in (2, 4, 6, 8)]
    assert by_bits == sorted(by_bits)
    per_tensor = sqnr_db(x, fake_quantize(x, 4, symmetric=True))
    per_channel = sqnr_db(x, fake_quantize(x, 4, symmetric=True, granularity="channel"))
    per_group = sqnr_db(x, fake_quantize(x, 4, symmetric=True, granularity="group", group_size=32))
    assert per_tensor < per_channel < per_group


def test_per_channel_along_any_axis():
    x = torch.randn(3, 5, 16)
    for axis in (0, 1, 2, -1):
        scale, zp = compute_qparams(x, 8, granularity="channel", axis=axis)
        assert scale.shape[axis % 3] == x.shape[axis] and scale.numel() == x.shape[axis]
        per_slice = [compute_qparams(x.select(axis % 3, i).contiguous(), 8)[0] for i in range(x.shape[axis])]
        assert torch.equal(scale.flatten(), torch.stack(per_slice))


def test_group_along_reduction_dim_matches_per_slice():
    x = torch.randn(4, 64)
    scale, zp = compute_qparams(x, 4, granularity="group", group_size=16)
    assert scale.shape == (4, 4)
    for g in range(4):
        s, z = compute_qparams(x[:, g * 16:(g + 1) * 16], 4, granularity="channel")
        assert torch.equal(scale[:, g], s.flatten()) and torch.equal(zp[:, g], z.flatten())


def test_constant_and_zero_tensors_get_finite_scales():
    for x in (torch.zeros(4, 8), torch.full((4, 8), 3.5), torch.full((4, 8), -2.0)):
        for symmetric in (True, False):
            t = quantize_tensor(x, 8, symmetric=symmetric, granularity="channel")
            assert bool(torch.isfinite(t.scale).all()) and bool((t.scale > 0).all())
            assert torch.allclose(t.dequantize(), x, atol=float(t.scale.max()) / 2)


def test_unsigned_range_option():
    x = torch.rand(4, 16)
    t = quantize_tensor(x, 8, signed=False)
    assert t.q.dtype == torch.uint8 and int(t.q.max()) == 255 and int(t.zero_point) == 0
