"""FP8 e4m3 row-wise (qtorch.quant.fp8): the formula, the CPU simulation the demo's accuracy table uses
(qtorch.eval.fp8_sim) and, on a GPU (marked cuda), the torch._scaled_mm baseline of the benchmarks
(qtorch_baselines.fp8) agreeing with the simulation."""
import pytest
import torch
import torch.nn.functional as F

from qtorch.eval.fp8_sim import Fp8SimLinear, simulate_fp8_rowwise_
from qtorch.quant.fp8 import E4M3, E4M3_MAX, fake_quantize_e4m3_rowwise, quantize_e4m3_rowwise


@pytest.mark.parametrize("shape", [(0, 8), (1, 1), (17, 37), (5, 300)])
def test_rowwise_formula(shape):
    x = torch.randn(*shape) * torch.logspace(-3, 3, shape[0]).reshape(-1, 1)  # rows over six decades
    q, scale = quantize_e4m3_rowwise(x)
    assert q.dtype == E4M3 and q.shape == x.shape and scale.shape == (shape[0], 1) and scale.dtype == torch.float32
    assert torch.equal(scale, x.abs().amax(dim=1, keepdim=True) / E4M3_MAX)
    # each row's largest magnitude lands on ±448 exactly
    assert torch.equal(q.float().abs().amax(dim=1, keepdim=True), torch.full_like(scale, E4M3_MAX))
    # round to nearest e4m3: 3 mantissa bits, relative error <= 2^-4 for normal values
    x_hat = fake_quantize_e4m3_rowwise(x)
    normal = (x / scale).abs() >= 2.0 ** -6
    assert torch.all((x_hat - x).abs()[normal] <= (x.abs() * 2.0 ** -4)[normal] * (1 + 1e-6))


def test_all_zero_row_has_unit_scale_and_bf16_keeps_dtype():
    q, scale = quantize_e4m3_rowwise(torch.zeros(2, 16))
    assert torch.equal(scale, torch.ones(2, 1)) and torch.equal(q.float(), torch.zeros(2, 16))
    x = torch.randn(3, 4, 32, dtype=torch.bfloat16)
    assert fake_quantize_e4m3_rowwise(x).dtype == torch.bfloat16 and fake_quantize_e4m3_rowwise(x).shape == x.shape


@torch.no_grad()
def test_sim_linear_is_the_formula_and_stores_8_bits():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 40)
    model = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(40, 8, bias=False))
    x = torch.randn(3, 7, 64)
    reference = model(x)
    assert simulate_fp8_rowwise_(model) == 2
    layer = model[0]
    assert isinstance(layer, Fp8SimLinear) and layer.weight.dtype == E4M3 and layer.weight.element_size() == 1
    expected = F.linear(fake_quantize_e4m3_rowwise(x), fake_quantize_e4m3_rowwise(lin.weight.detach()), lin.bias)
    assert torch.equal(layer(x), expected)
    out = model(x)
    sqnr = 10 * torch.log10(reference.pow(2).sum() / (out - reference).pow(2).sum())
    assert 20 < float(sqnr) < 40  # e4m3: ~30 dB per quantized tensor


@pytest.mark.cuda
@torch.no_grad()
@pytest.mark.parametrize("m", [1, 17, 256])
def test_scaled_mm_baseline_matches_the_simulation(m):
    from qtorch_baselines.fp8 import Fp8RowwiseLinear, quantize_fp8_rowwise_

    torch.manual_seed(m)
    lin = torch.nn.Linear(1024, 528, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(m, 1024, device="cuda", dtype=torch.bfloat16)
    y = Fp8RowwiseLinear(lin)(x)
    sim = Fp8SimLinear.from_linear(lin.float())(x.float())  # the same e4m3 values, fp32 arithmetic
    assert y.dtype == torch.bfloat16 and y.shape == (m, 528)
    torch.testing.assert_close(y.float(), sim, rtol=2e-2, atol=2e-2)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.Linear(48, 10))
    assert quantize_fp8_rowwise_(model) == 1  # 10 output channels: torch._scaled_mm needs multiples of 16
