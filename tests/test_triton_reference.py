"""Reference math for the Triton kernel tests: the PyTorch references of the qtorch:: ops (qtorch.ops, built on
qtorch.quant), re-exported under short names, plus an independent transcription of docs/DESIGN.md that is checked
against them (and against the course notes) here, so a drift in either shows up as a failing test.
"""
import pytest
import torch

from qtorch.ops.activation import quantize_per_token_reference as quantize_per_token_ref
from qtorch.ops.group import group_dequantize_reference as group_dequantize_ref
from qtorch.ops.group import group_quantize_reference as group_quantize_ref

QMIN8, QMAX8 = -128, 127


def contract_quantize_per_token_ref(x):
    """x (M, K) float -> q (M, K) int8, scale (M,) fp32, zero_point (M,) int32; asymmetric int8 per row."""
    r = x.float()
    r_min = torch.clamp(r.amin(dim=1), max=0.0)
    r_max = torch.clamp(r.amax(dim=1), min=0.0)
    scale = (r_max - r_min) / (QMAX8 - QMIN8)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero_point = torch.clamp(torch.round(QMIN8 - r_min / scale), QMIN8, QMAX8)
    q = torch.clamp(torch.round(r / scale[:, None]) + zero_point[:, None], QMIN8, QMAX8)
    return q.to(torch.int8), scale, zero_point.to(torch.int32)


def contract_group_quantize_ref(w, bits, group_size, symmetric):
    """w (N, K) float -> q (N, K) int8 or (N, K/2) uint8 packed, scale (N, K/g) fp32, zero_point (N, K/g) int8."""
    n, k = w.shape
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    r = w.float().reshape(n, k // group_size, group_size)  # (N, G, g)
    if symmetric:
        scale = r.abs().amax(dim=2) / qmax
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        zero_point = torch.zeros_like(scale)
    else:
        r_min = torch.clamp(r.amin(dim=2), max=0.0)
        r_max = torch.clamp(r.amax(dim=2), min=0.0)
        scale = (r_max - r_min) / (qmax - qmin)
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        zero_point = torch.clamp(torch.round(qmin - r_min / scale), qmin, qmax)
    q = torch.clamp(torch.round(r / scale[..., None]) + zero_point[..., None], qmin, qmax).to(torch.int32).reshape(n, k)
    if bits == 4:
        q = ((q[:, 0::2] & 0xF) | ((q[:, 1::2] & 0xF) << 4)).to(torch.uint8)
    else:
        q = q.to(torch.int8)
    return q, scale, zero_point.to(torch.int8)


def unpack_int4_ref(packed):
    """(N, K/2) uint8 -> (N, K) int32 sign-extended nibbles, low nibble = even k."""
    p = packed.to(torch.int32)
    low = ((p & 0xF) ^ 8) - 8
    high = (((p >> 4) & 0xF) ^ 8) - 8
    return torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)


def contract_group_dequantize_ref(q, scale, zero_point, bits, group_size, dtype):
    """S * (q - Z) in fp32, cast to dtype; (N, K)."""
    qi = unpack_int4_ref(q) if bits == 4 else q.to(torch.int32)
    n, k = qi.shape
    g = qi.reshape(n, k // group_size, group_size).float()
    r = scale.float()[..., None] * (g - zero_point.float()[..., None])
    return r.reshape(n, k).to(dtype)


def test_course_example_asymmetric_2bit():
    # Course notes: r in [-1.08, 2.12], 2-bit: S = 3.2 / 3 = 1.07, Z = round(-2 - (-1.08 / 1.07)) = -1.
    r_min, r_max, qmin, qmax = -1.08, 2.12, -2, 1
    scale = torch.tensor((r_max - r_min) / (qmax - qmin), dtype=torch.float32)
    assert round(scale.item(), 2) == 1.07
    assert torch.round(qmin - torch.tensor(r_min) / scale).item() == -1


def test_reference_rounds_half_to_even():
    # Range [0, 255] -> S = 1, Z = -128; 0.5 and 2.5 round down to even, 1.5 rounds up.
    x = torch.tensor([[0.0, 0.5, 1.5, 2.5, 255.0]])
    q, scale, zp = contract_quantize_per_token_ref(x)
    assert scale.item() == 1.0 and zp.item() == -128
    assert q.tolist() == [[-128, -128, -126, -126, 127]]


@pytest.mark.parametrize("bits", [4, 8])
def test_reference_group_roundtrip_error_bounded(bits):
    w = torch.randn(8, 64)
    q, s, z = contract_group_quantize_ref(w, bits, 32, symmetric=False)
    w_hat = contract_group_dequantize_ref(q, s, z, bits, 32, torch.float32)
    assert ((w - w_hat).abs().reshape(8, 2, 32) <= s[..., None] / 2 * (1 + 1e-6)).all()


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [4, 8])
def test_contract_transcription_matches_qtorch_reference(bits, symmetric):
    w = torch.randn(6, 128) * 0.1
    w[0, :32] = 0.0
    for mine, theirs in zip(contract_group_quantize_ref(w, bits, 32, symmetric), group_quantize_ref(w, bits, 32, symmetric)):
        assert torch.equal(mine, theirs)
    q, s, z = group_quantize_ref(w, bits, 32, symmetric)
    assert torch.equal(contract_group_dequantize_ref(q, s, z, bits, 32, torch.bfloat16),
                       group_dequantize_ref(q, s, z, bits, 32, torch.bfloat16))
    x = torch.randn(5, 33).to(torch.bfloat16)
    for mine, theirs in zip(contract_quantize_per_token_ref(x), quantize_per_token_ref(x)):
        assert torch.equal(mine, theirs)
