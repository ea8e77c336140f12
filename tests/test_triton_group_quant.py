"""qtorch::group_quantize / group_dequantize on the Triton kernels (triton_kernels.group_quant, forced with
qtorch.ops.force_backend): q, scales and zero points bit-exact with the reference; dequantization exact."""
import pytest
import torch
from test_triton_reference import group_dequantize_ref, group_quantize_ref

import qtorch.ops as qops

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def quantize(w, bits, group_size, symmetric, backend="triton"):
    with qops.force_backend("group_quantize", backend):
        return qops.group_quantize(w, bits, group_size, symmetric)


def dequantize(q, scale, zp, bits, group_size, dtype, backend="triton_tiled"):
    with qops.force_backend("group_dequantize", backend):
        return qops.group_dequantize(q, scale, zp, bits, group_size, dtype)


def _check_quantize(w, bits, group_size, symmetric):
    q, scale, zp = quantize(w, bits, group_size, symmetric)
    q_ref, scale_ref, zp_ref = group_quantize_ref(w, bits, group_size, symmetric)
    assert q.dtype == q_ref.dtype and q.shape == q_ref.shape
    assert torch.equal(scale, scale_ref)
    assert torch.equal(zp, zp_ref)
    assert torch.equal(q, q_ref)
    return q, scale, zp


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [16, 32, 256])
def test_quantize_matches_reference(bits, symmetric, group_size):
    w = (torch.randn(5, 2 * group_size) * 0.05 + 0.01).to(DEVICE)
    _check_quantize(w, bits, group_size, symmetric)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [64, 128])
def test_quantize_half_inputs(dtype, group_size):
    w = torch.randn(3, group_size * 3).to(dtype).to(DEVICE)
    _check_quantize(w, 4, group_size, symmetric=False)


def test_quantize_edge_groups_and_strided_input():
    w = torch.randn(4, 64)
    w[0, :32] = 0.0  # all-zero group: S = 1, Z = 0 / qmin-based
    w[1, :32] = torch.linspace(0.1, 2.0, 32)  # positive only: r_min clamps to 0
    w[2, 32:] = -torch.linspace(0.1, 2.0, 32)  # negative only
    w[3, :32] = torch.arange(32) * 0.5 - 8.0  # exact ties after division
    for bits in (4, 8):
        for symmetric in (True, False):
            _check_quantize(w.to(DEVICE), bits, 32, symmetric)
    wide = torch.randn(64, 6, device=DEVICE)
    _check_quantize(wide.t(), 8, 32, symmetric=False)  # (6, 64) with stride (1, 6)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_dequantize_matches_reference(bits, dtype):
    w = torch.randn(6, 128, device=DEVICE)
    q, scale, zp = quantize(w, bits, 64, symmetric=False)
    out = dequantize(q, scale, zp, bits, 64, dtype)
    assert out.dtype == dtype
    assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, 64, dtype))


def test_tiled_kernels_refuse_other_group_sizes():
    w = torch.randn(4, 96, device=DEVICE)
    with pytest.raises(ValueError, match="triton.*group sizes"):
        quantize(w, 4, 48, True)
    q, scale, zp = group_quantize_ref(w, 4, 48, True)
    with pytest.raises(ValueError, match="triton_tiled.*group sizes"):
        dequantize(q, scale, zp, 4, 48, torch.float32)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n, k, group_size", [(3, 136, 136), (5, 96, 48), (2, 11008, 11008)])
def test_dequantize_any_group_size_dividing_k(bits, n, k, group_size):
    """Per channel (g = K) and group sizes that are no power of 2: the flat-index kernel, bit-exact."""
    q, scale, zp = group_quantize_ref(torch.randn(n, k, device=DEVICE), bits, group_size, False)
    for dtype in (torch.bfloat16, torch.float32):
        out = dequantize(q, scale, zp, bits, group_size, dtype, "triton_flat")
        assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, group_size, dtype))


@pytest.mark.cuda
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("shape, group_size", [((11008, 4096), 128), ((4096, 11008), 32), ((17, 4096), 256)])
def test_real_shapes_gpu(bits, symmetric, shape, group_size):
    w = (torch.randn(shape, device="cuda") * 0.02).to(torch.bfloat16)
    q, scale, zp = _check_quantize(w, bits, group_size, symmetric)
    out = dequantize(q, scale, zp, bits, group_size, torch.bfloat16)
    assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, group_size, torch.bfloat16))
