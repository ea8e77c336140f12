"""triton_kernels.group_quant: q, scales and zero points bit-exact with the reference; dequantization exact."""
import pytest
import torch
from test_triton_reference import group_dequantize_ref, group_quantize_ref

from triton_kernels import group_quant

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _check_quantize(w, bits, group_size, symmetric):
    q, scale, zp = group_quant.group_quantize(w, bits, group_size, symmetric)
    q_ref, scale_ref, zp_ref = group_quantize_ref(w, bits, group_size, symmetric)
    assert q.dtype == q_ref.dtype and q.shape == q_ref.shape
    assert torch.equal(scale, scale_ref)
    assert torch.equal(zp, zp_ref)
    assert torch.equal(q, q_ref)
    return q, scale, zp


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [32, 256])
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
    q, scale, zp = group_quant.group_quantize(w, bits, 64, symmetric=False)
    out = group_quant.group_dequantize(q, scale, zp, bits, 64, dtype)
    assert out.dtype == dtype
    assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, 64, dtype))


@pytest.mark.parametrize(
    "shape, bits, group_size, error, match",
    [
        ((4, 96), 4, 64, ValueError, "divisible by group_size"),
        ((4, 64), 3, 32, ValueError, "bits"),
        ((4, 64), 4, 48, ValueError, "group_size"),
        ((64,), 4, 32, ValueError, "2-D"),
    ],
)
def test_quantize_bad_input(shape, bits, group_size, error, match):
    with pytest.raises(error, match=match):
        group_quant.group_quantize(torch.randn(shape, device=DEVICE), bits, group_size, True)


def test_quantize_bad_dtype_and_dequantize_bad_input():
    with pytest.raises(TypeError, match="w must be"):
        group_quant.group_quantize(torch.ones(2, 32, dtype=torch.int8, device=DEVICE), 8, 32, True)
    q, scale, zp = group_quant.group_quantize(torch.randn(2, 64, device=DEVICE), 4, 32, True)
    with pytest.raises(TypeError, match="q must be"):
        group_quant.group_dequantize(q.to(torch.int8), scale, zp, 4, 32, torch.float32)
    with pytest.raises(ValueError, match="scale must be"):
        group_quant.group_dequantize(q, scale[:, :1], zp, 4, 32, torch.float32)
    with pytest.raises(TypeError, match="dtype must be"):
        group_quant.group_dequantize(q, scale, zp, 4, 32, torch.int32)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n, k, group_size", [(3, 136, 136), (5, 96, 48), (2, 11008, 11008)])
def test_dequantize_any_group_size_dividing_k(bits, n, k, group_size):
    """Per channel (g = K) and group sizes that are no power of 2: the flat-index kernel, bit-exact."""
    q, scale, zp = group_quantize_ref(torch.randn(n, k, device=DEVICE), bits, group_size, False)
    for dtype in (torch.bfloat16, torch.float32):
        out = group_quant.group_dequantize(q, scale, zp, bits, group_size, dtype)
        assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, group_size, dtype))


@pytest.mark.cuda
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("shape, group_size", [((11008, 4096), 128), ((4096, 11008), 32), ((17, 4096), 256)])
def test_real_shapes_gpu(bits, symmetric, shape, group_size):
    w = (torch.randn(shape, device="cuda") * 0.02).to(torch.bfloat16)
    q, scale, zp = _check_quantize(w, bits, group_size, symmetric)
    out = group_quant.group_dequantize(q, scale, zp, bits, group_size, torch.bfloat16)
    assert torch.equal(out, group_dequantize_ref(q, scale, zp, bits, group_size, torch.bfloat16))
