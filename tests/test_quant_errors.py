"""Bad input to the primitives: a clear TypeError/ValueError naming the argument, never a crash or a wrong answer."""
import pytest
import torch

from qtorch.quant import compute_qparams, dequantize, quantize, quantize_tensor, sqnr_db


@pytest.mark.parametrize("call,exc,match", [
    (lambda: compute_qparams(torch.tensor([1, 2, 3]), 8), TypeError, "x: expected a floating tensor"),
    (lambda: compute_qparams([1.0, 2.0], 8), TypeError, "x: expected a torch.Tensor"),
    (lambda: compute_qparams(torch.randn(4), 1), ValueError, "bits: expected a bit width in"),
    (lambda: compute_qparams(torch.randn(4), 9), ValueError, "bits: expected a bit width in"),
    (lambda: compute_qparams(torch.randn(4), 4.0), TypeError, "bits: expected an int"),
    (lambda: compute_qparams(torch.randn(4, 10), 4, granularity="group", group_size=4), ValueError,
     "not divisible by group_size=4"),
    (lambda: compute_qparams(torch.randn(4, 8), 4, granularity="group"), ValueError, "group_size: required"),
    (lambda: compute_qparams(torch.randn(4, 8), 4, granularity="group", group_size=0), ValueError, "group_size"),
    (lambda: compute_qparams(torch.randn(4, 8), 4, granularity="row"), ValueError, "granularity: expected one of"),
    (lambda: compute_qparams(torch.randn(4, 8), 4, granularity="channel", axis=2), ValueError, "axis"),
    (lambda: compute_qparams(torch.randn(4, 8), 4, symmetric=True, signed=False), ValueError, "symmetric"),
    (lambda: compute_qparams(torch.tensor([1.0, float("nan")]), 8), ValueError, "x: contains 1 NaN"),
    (lambda: compute_qparams(torch.tensor([1.0, float("inf")]), 8), ValueError, "x: contains 0 NaN and 1 Inf"),
    (lambda: compute_qparams(torch.empty(0), 8), ValueError, "empty"),
    (lambda: quantize(torch.tensor([float("nan")]), torch.tensor(1.0), torch.tensor(0), 8), ValueError, "NaN"),
    (lambda: dequantize(torch.randn(4), torch.tensor(1.0), torch.tensor(0)), TypeError, "q: expected an integer"),
    (lambda: quantize(torch.randn(2, 8), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.int32), 4, group_size=4),
     ValueError, "scale: shape"),
    (lambda: sqnr_db(torch.randn(3), torch.randn(4)), ValueError, "x_hat: expected shape"),
])
def test_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_half_precision_inputs_are_accepted_and_computed_in_float32():
    x = torch.randn(8, 32)
    for dtype in (torch.float16, torch.bfloat16):
        t = quantize_tensor(x.to(dtype), 8, granularity="channel")
        ref = quantize_tensor(x.to(dtype).float(), 8, granularity="channel")
        assert torch.equal(t.q, ref.q) and torch.equal(t.scale, ref.scale)
