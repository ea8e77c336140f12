"""The course's worked examples (4×4 matrix, 2-bit), reproduced exactly."""
import pytest
import torch

from qtorch.quant import compute_qparams, kmeans_dequantize, kmeans_quantize, quantize, quantize_tensor, \
    reconstruction_error

W = torch.tensor([[2.09, -0.98, 1.48, 0.09],
                  [0.05, -0.14, -1.08, 2.12],
                  [-0.91, 1.92, 0.00, -1.03],
                  [1.87, 0.00, 1.53, 1.49]])


def test_asymmetric_per_tensor_2bit():
    scale, zero_point = compute_qparams(W, 2)
    assert round(float(scale), 2) == 1.07  # (2.12 − (−1.08)) / (1 − (−2))
    assert int(zero_point) == -1  # round(−2 − (−1.08)/1.07)
    q = quantize(W, scale, zero_point, 2)
    expected = torch.tensor([[1, -2, 0, -1], [-1, -1, -2, 1], [-2, 1, -1, -2], [1, -1, 0, 0]], dtype=torch.int8)
    assert torch.equal(q, expected)


def test_symmetric_per_tensor_2bit():
    t = quantize_tensor(W, 2, symmetric=True)
    assert round(float(t.scale), 2) == 2.12  # |r|max / q_max = 2.12 / 1
    expected = torch.tensor([[1, 0, 1, 0], [0, 0, -1, 1], [0, 1, 0, 0], [1, 0, 1, 1]], dtype=torch.int8)
    assert torch.equal(t.q, expected)
    assert round(reconstruction_error(W, t.dequantize()), 2) == 2.28


def test_symmetric_per_channel_2bit():
    t = quantize_tensor(W, 2, symmetric=True, granularity="channel", axis=0)
    assert [round(float(s), 2) for s in t.scale.flatten()] == [2.09, 2.12, 1.92, 1.87]
    expected = torch.tensor([[1, 0, 1, 0], [0, 0, -1, 1], [0, 1, 0, -1], [1, 0, 1, 1]], dtype=torch.int8)
    assert torch.equal(t.q, expected)
    assert round(reconstruction_error(W, t.dequantize()), 2) == 2.08


def test_kmeans_2bit_per_tensor():
    indices, codebook = kmeans_quantize(W, 2, seed=0)
    assert [round(float(c), 2) for c in codebook] == [-1.00, 0.00, 1.50, 2.00]
    expected = torch.tensor([[3, 0, 2, 1], [1, 1, 0, 3], [0, 3, 1, 0], [3, 1, 2, 2]], dtype=torch.uint8)
    assert torch.equal(indices, expected)
    rebuilt = kmeans_dequantize(indices, codebook)
    assert torch.allclose(rebuilt, codebook[indices.long()])


@pytest.mark.parametrize("bits,expected", [(2, (-2, 1)), (3, (-4, 3)), (4, (-8, 7)), (8, (-128, 127))])
def test_signed_ranges_match_the_table(bits, expected):
    from qtorch.quant import qrange
    assert qrange(bits) == expected
    assert qrange(bits, signed=False) == (0, (1 << bits) - 1)
