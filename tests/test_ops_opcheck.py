"""torch.library.opcheck for every qtorch:: op: schema, fake (meta) implementation, autograd registration and
AOT dispatch with dynamic shapes, on sample inputs including an empty batch and ragged sizes."""
import pytest
import torch

import qtorch.ops as qops
from qtorch.quant import quantize_multiplier

M_SIZES = (0, 17)  # the dynamic-shape check also runs other sizes
K, N = 64, 24


def int8(*shape):
    return torch.randint(-128, 128, shape, dtype=torch.int8)


def int8_scaled_mm_args(m, with_w_zp, with_bias, out_dtype):
    w_q = int8(N, K)
    return (int8(m, K), torch.rand(m) + 0.01, torch.randint(-128, 128, (m,), dtype=torch.int32), w_q,
            torch.rand(N) + 0.01, w_q.sum(1, dtype=torch.int32),
            torch.randint(-5, 5, (N,), dtype=torch.int32) if with_w_zp else None,
            torch.randn(N, dtype=out_dtype) if with_bias else None, out_dtype)


def requant_args(m, with_bias):
    w_q = int8(N, K)
    multiplier, shift = quantize_multiplier(torch.rand(N, dtype=torch.float64) * 1e-3 + 1e-4)
    return (int8(m, K), 3, w_q, torch.zeros(N, dtype=torch.int32), w_q.sum(1, dtype=torch.int32),
            torch.randint(-1000, 1000, (N,), dtype=torch.int32) if with_bias else None, multiplier, shift, -7)


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_quantize_per_token(m, dtype):
    torch.library.opcheck(qops.quantize_per_token, (torch.randn(m, K, dtype=dtype),))


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantize_per_tensor(m, dtype):
    torch.library.opcheck(qops.quantize_per_tensor, (torch.randn(m, K, dtype=dtype), torch.tensor([0.05]),
                                                     torch.tensor([-4], dtype=torch.int32)))


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("with_w_zp,with_bias,out_dtype", [(False, True, torch.bfloat16), (True, False, torch.float32),
                                                           (True, True, torch.float16)])
def test_int8_scaled_mm(m, with_w_zp, with_bias, out_dtype):
    torch.library.opcheck(qops.int8_scaled_mm, int8_scaled_mm_args(m, with_w_zp, with_bias, out_dtype))


@pytest.mark.parametrize("m", M_SIZES)
def test_int8_scaled_mm_per_tensor(m):
    """Static W8A8: (1,) S_X, Z_X for any M."""
    args = int8_scaled_mm_args(m, False, True, torch.bfloat16)
    torch.library.opcheck(qops.int8_scaled_mm, args[:1] + (torch.rand(1) + 0.01, torch.tensor([5], dtype=torch.int32))
                          + args[3:])


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_int8_linear_requant(m, with_bias):
    torch.library.opcheck(qops.int8_linear_requant, requant_args(m, with_bias))


@pytest.mark.parametrize("bits,group_size,symmetric", [(4, 32, True), (4, 64, False), (8, K, True)])
def test_group_quantize_and_dequantize(bits, group_size, symmetric):
    w = torch.randn(N, K)
    torch.library.opcheck(qops.group_quantize, (w, bits, group_size, symmetric))
    q, scale, zp = qops.group_quantize(w, bits, group_size, symmetric)
    for dtype in (torch.float32, torch.bfloat16):
        torch.library.opcheck(qops.group_dequantize, (q, scale, zp, bits, group_size, dtype))


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("bits,group_size,with_bias", [(4, 32, True), (8, K, False)])
def test_weight_only_linear(m, bits, group_size, with_bias):
    q, scale, zp = qops.group_quantize(torch.randn(N, K), bits, group_size, False)
    x = torch.randn(m, K, dtype=torch.bfloat16)
    bias = torch.randn(N, dtype=torch.bfloat16) if with_bias else None
    torch.library.opcheck(qops.weight_only_linear, (x, q, scale, zp, bits, group_size, bias))


@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("bits,group_size,entries", [(2, 32, 4), (4, K, 8), (8, 32, 256)])
def test_codebook_linear(m, bits, group_size, entries):
    from qtorch.quant import pack

    indices = pack(torch.randint(0, entries, (N, K), dtype=torch.uint8), bits, signed=False)
    codebook = torch.randn(N, K // group_size, entries)
    x = torch.randn(m, K)
    torch.library.opcheck(qops.codebook_linear, (x, indices, codebook, bits, group_size, torch.randn(N)))
