"""qtorch::quantize_per_token on its Triton kernel (triton_kernels.act_quant, forced with qtorch.ops.force_backend):
bit-exact with the reference (interpreter on CPU, H200 on GPU)."""
import pytest
import torch
from test_triton_reference import quantize_per_token_ref

import qtorch.ops as qops
from triton_kernels import act_quant

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def quantize(x):
    with qops.force_backend("quantize_per_token", "triton"):
        return qops.quantize_per_token(x)


def _check(x):
    q, scale, zp = quantize(x)
    q_ref, scale_ref, zp_ref = quantize_per_token_ref(x)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and zp.dtype == torch.int32
    assert torch.equal(scale, scale_ref)
    assert torch.equal(zp, zp_ref)
    assert torch.equal(q, q_ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (17, 200)])
def test_matches_reference(dtype, shape):
    x = (torch.randn(shape) * 3 + 0.5).to(dtype).to(DEVICE)
    _check(x)


def test_edge_rows_all_zero_positive_negative_and_ties():
    x = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # S == 0 -> S = 1, Z = -128
            [1.0, 2.0, 3.0, 4.0],  # r_min clamps to 0
            [-1.0, -2.0, -3.0, -4.0],  # r_max clamps to 0
            [0.0, 0.5, 1.5, 255.0],  # S = 1: exact ties round half to even
        ],
        device=DEVICE,
    )
    _check(x)


def test_two_pass_path_for_long_rows(monkeypatch):
    monkeypatch.setattr(act_quant, "SINGLE_PASS_MAX_K", 64)
    x = torch.randn(3, 300, device=DEVICE).to(torch.bfloat16)
    _check(x)


def test_non_contiguous_rows_and_empty():
    x = torch.randn(6, 80, device=DEVICE)[::2, :50]
    _check(x)
    q, scale, zp = quantize(torch.empty(0, 8, device=DEVICE))
    assert q.shape == (0, 8) and scale.shape == (0,) and zp.shape == (0,)


@pytest.mark.parametrize(
    "x, error",
    [
        (torch.zeros(4, dtype=torch.float32), ValueError),  # 1-D
        (torch.zeros(2, 4, dtype=torch.int32), TypeError),  # not a float
        (torch.zeros(2, 0), ValueError),  # K == 0
    ],
)
def test_bad_input(x, error):
    with pytest.raises(error, match="x"):
        quantize(x.to(DEVICE))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1, 4096), (17, 11008), (4099, 4096), (5, 40000)])
def test_matches_reference_gpu(dtype, shape):
    x = (torch.randn(shape, device="cuda") * 4).to(dtype)
    x[0, :7] = torch.tensor([0.5, 1.5, -2.5, 100.0, -100.0, 0.0, 3.0], device="cuda").to(dtype)
    _check(x)


def _rn32(v):
    """Round the exact rational v to the nearest fp32 (ties to even, subnormals kept), as a Python float."""
    from fractions import Fraction

    v = Fraction(v)
    if v == 0:
        return 0.0
    sign, v = (-1.0 if v < 0 else 1.0), abs(v)
    exp = max(v.numerator.bit_length() - v.denominator.bit_length(), -126)
    while v >= Fraction(2) ** (exp + 1):
        exp += 1
    while exp > -126 and v < Fraction(2) ** exp:
        exp -= 1
    units = v / Fraction(2) ** (exp - 23)  # significand in units of the last place, 2^23 <= units < 2^24 when normal
    whole, rest = divmod(units.numerator, units.denominator)
    if 2 * rest > units.denominator or (2 * rest == units.denominator and whole % 2):
        whole += 1
    return sign * whole * 2.0 ** (exp - 23)


def test_row_reciprocal_division_is_correctly_rounded():
    """_div_rn_by_row's arithmetic (GPU path: FMUL + 4 FFMA from RN(1/S)), transcribed with exact rationals, equals
    RN(r / S) on random scales and on dividends placed within a few ulps of r / S = k + 1/2 (the rint ties)."""
    from fractions import Fraction

    import numpy as np

    rng = np.random.default_rng(0)

    def fma(a, b, c):
        return _rn32(Fraction(a) * Fraction(b) + Fraction(c))

    cases = []
    for _ in range(1500):
        scale = float(np.float32(rng.uniform(1, 2) * 2.0 ** int(rng.integers(-60, 60))))
        half = int(rng.integers(-256, 256)) + 0.5
        r = float(np.float32(half * scale))
        for nudge in (-2, -1, 0, 1, 2):  # fp32 neighbours of the tie dividend
            cases.append((float(np.nextafter(np.float32(r), np.float32(np.inf * nudge))) if nudge else r, scale))
        cases.append((float(np.float32(rng.uniform(-255, 255) * scale)), scale))
    for r, scale in cases:
        recip = _rn32(1 / Fraction(scale))
        q = _rn32(Fraction(r) * Fraction(recip))
        q = fma(fma(-scale, q, r), recip, q)
        q = fma(fma(-scale, q, r), recip, q)
        assert q == _rn32(Fraction(r) / Fraction(scale)), (r, scale)


@pytest.mark.parametrize("rows", [1, 4, 8])
@pytest.mark.parametrize("m", [1, 5, 17])
def test_multi_row_tiles_with_ragged_m(monkeypatch, rows, m):
    monkeypatch.setattr(act_quant, "INTERPRET_ROWS", rows)
    x = (torch.randn(m, 40) * torch.logspace(-3, 3, m)[:, None]).to(torch.bfloat16).to(DEVICE)
    _check(x)


def test_many_rows_last_tile_partial():
    x = (torch.randn(4099, 24) * 2 - 0.3).to(torch.float16).to(DEVICE)  # 4099 = 4 * 1024 + 3 rows
    _check(x)


# a row with an infinite range: the interpreter's numpy warns about inf - inf (the kernel's result is still checked)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_rows_of_different_ranges_share_a_tile():
    x = torch.tensor(
        [
            [0.0] * 6,  # zero row next to ...
            [1e-30, 2e-30, 0.0, 3e-30, 0.0, 1e-30],  # tiny range (S below the fast-division range on the GPU)
            [1e4, -3e4, 2.5e4, 0.0, 7.0, -1.0],  # large range
            [0.25, 0.5, 0.75, 1.0, 1.25, 255.0],  # all positive, S = 1
            [-255.0, -0.5, -1.5, -2.5, -127.5, -128.5],  # all negative, S = 1: ties on both sides of Z
            [3e38, -3e38, 1.0, -1.0, 0.0, 2.0],  # r_max - r_min overflows to inf: S = inf
            [0.5, -0.5, 1.5, -1.5, 2.5, -2.5],
        ],
        device=DEVICE,
    )
    _check(x)
    _check(x.to(torch.bfloat16)[:5])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_row_stride_not_a_multiple_of_16(dtype):
    base = (torch.randn(23, 77) * 5).to(dtype).to(DEVICE)
    _check(base[::3, 2:70])  # stride 231 elements, rows start at odd offsets
