"""GPTQ on weight matrices and over models: layout, exactness where it must equal round-to-nearest, error reduction
on correlated inputs, and argument errors."""
import copy

import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.algorithms import (GroupQuantizedWeight, HessianAccumulator, gptq_quantize_model, gptq_quantize_weight,
                               quantize_gptq_, rtn_quantize_weight, stage_of)
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig
from qtorch.models import build_llama
from qtorch.nn.base import QuantLinear
from qtorch.ops.group import group_quantize_reference


def correlated_inputs(n: int, k: int, rank: int = 8, seed: int = 0) -> torch.Tensor:
    """(n, k) activations with a few dominant directions and uneven channel scales, like a transformer's."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(rank, k, generator=gen)
    x = torch.randn(n, rank, generator=gen) @ basis + 0.1 * torch.randn(n, k, generator=gen)
    return x * torch.exp(torch.randn(k, generator=gen))  # (n, k)


def hessian_of(x: torch.Tensor) -> torch.Tensor:
    acc = HessianAccumulator(x.shape[1])
    acc.add(x)
    return acc.hessian


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group_size", [32, 128])
def test_rtn_matches_group_quantize_op_reference(symmetric, group_size):
    w = torch.randn(48, 256)
    ref_q, ref_scale, ref_zp = group_quantize_reference(w, 4, group_size, symmetric)
    got = rtn_quantize_weight(w, bits=4, group_size=group_size, symmetric=symmetric)
    assert torch.equal(got.packed(), ref_q)
    assert torch.equal(got.scale, ref_scale)
    assert torch.equal(got.zero_point, ref_zp)


def test_gptq_with_diagonal_hessian_is_round_to_nearest():
    """H diagonal -> no error is spread to other columns: GPTQ reduces to round-to-nearest, bit for bit."""
    w = torch.randn(40, 256)
    h = torch.diag(torch.rand(256, dtype=torch.float64) + 0.5)
    got = gptq_quantize_weight(w, h, bits=4, group_size=64, clip_search=False)
    ref = rtn_quantize_weight(w, bits=4, group_size=64)
    assert torch.equal(got.q, ref.q) and torch.equal(got.scale, ref.scale) and torch.equal(got.zero_point,
                                                                                             ref.zero_point)


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("clip_search", [False, True])
def test_gptq_reduces_output_error_on_correlated_inputs(act_order, clip_search):
    k, n = 256, 96
    x = correlated_inputs(1024, k)
    w = torch.randn(n, k) * 0.05
    got = gptq_quantize_weight(w, hessian_of(x), group_size=128, clip_search=clip_search, act_order=act_order)
    rtn = rtn_quantize_weight(w, group_size=128)
    err_gptq = torch.linalg.norm(x @ (w - got.dequantize()).t())
    err_rtn = torch.linalg.norm(x @ (w - rtn.dequantize()).t())
    assert err_gptq < 0.8 * err_rtn
    # valid layout: signed int4, zero points in range, positive scales
    assert got.q.dtype == torch.int8 and int(got.q.min()) >= -8 and int(got.q.max()) <= 7
    assert int(got.zero_point.min()) >= -8 and int(got.zero_point.max()) <= 7
    assert bool((got.scale > 0).all())
    assert got.packed().shape == (n, k // 2) and got.packed().dtype == torch.uint8


def test_dead_inputs_are_zeroed():
    x = correlated_inputs(256, 128)
    x[:, 5] = 0.0
    got = gptq_quantize_weight(torch.randn(16, 128), hessian_of(x), group_size=32)
    assert torch.allclose(got.dequantize()[:, 5], torch.zeros(16), atol=float(got.scale.max()))


def test_hessian_accumulator_is_the_mean_over_all_rows():
    x = torch.randn(68, 32, dtype=torch.float64)
    acc = HessianAccumulator(32)
    for part in (x[:10], x[10:11], x[11:].reshape(3, 19, 32)):
        acc.add(part)
    assert acc.count == 68
    assert torch.allclose(acc.hessian, 2.0 / 68 * x.t() @ x)


def test_gptq_argument_errors():
    w, h = torch.randn(8, 64), torch.eye(64, dtype=torch.float64)
    with pytest.raises(ValueError, match="hessian"):
        gptq_quantize_weight(w, torch.eye(32))
    with pytest.raises(ValueError, match="weight"):
        gptq_quantize_weight(torch.randn(64), h)
    with pytest.raises(ValueError, match="bits"):
        gptq_quantize_weight(w, h, bits=3, group_size=32)
    with pytest.raises(ValueError, match="group_size"):
        gptq_quantize_weight(w, h, group_size=48)
    with pytest.raises(ValueError, match="damp"):
        gptq_quantize_weight(w, h, group_size=32, damp=0.0)
    bad = w.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gptq_quantize_weight(bad, h, group_size=32)
    with pytest.raises(TypeError, match="weight"):
        gptq_quantize_weight(w.to(torch.int32), h, group_size=32)


def test_stage_of():
    assert stage_of("bert.encoder.layer.3.attention.self.query") == "bert.encoder.layer.3"
    assert stage_of("layers.0.feed_forward.w1") == "layers.0"
    assert stage_of("output") == "output"


def _llama_and_batches():
    model = build_llama("tiny", seed=0)
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randint(0, 512, (2, 32), generator=gen) for _ in range(2)]
    return model, batches


def test_quantize_gptq_builds_group_weight_only_layers():
    model, batches = _llama_and_batches()
    float_model = copy.deepcopy(model)
    tokens = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(9))
    config = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False)
    summary = quantize_gptq_(model, batches, config, progress=False)
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == len(summary.converted) == 2 * 7 + 1
    assert all(m.config == config for m in layers)
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert summary.weight_bytes_after == sum(m.weight_bytes for m in layers)
    # the QuantLinear computes with exactly the GPTQ reconstruction, through the weight-only op
    rtn = copy.deepcopy(float_model)
    qtorch.quantize_(rtn, config)
    with torch.no_grad():
        ref, got, base = float_model(tokens), model(tokens), rtn(tokens)
    assert torch.isfinite(got).all()
    assert torch.linalg.norm(ref - got) < 1.5 * torch.linalg.norm(ref - base)  # no worse than round-to-nearest


def test_quantize_gptq_per_layer_configs_and_already_quantized_layers():
    model, batches = _llama_and_batches()
    qtorch.quantize_(model, PerLayerConfig({"output": Int8WeightOnlyConfig()}))
    g64 = GroupWeightOnlyConfig(bits=4, group_size=64, symmetric=False)
    g128 = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False)
    plan = {"layers.0.attention.wq": g64, "layers.1.feed_forward.w2": g128}
    summary = quantize_gptq_(model, batches, plan, progress=False)
    assert sorted(summary.converted) == sorted(plan)
    assert model.layers[0].attention.wq.config == g64 and model.layers[0].attention.wq.group_size == 64
    assert model.layers[1].feed_forward.w2.config == g128
    assert type(model.layers[0].attention.wk) is nn.Linear  # not in the plan: left float
    assert model.output.config == Int8WeightOnlyConfig()  # already quantized: left as it was


def test_quantize_gptq_errors():
    model, batches = _llama_and_batches()
    with pytest.raises(TypeError, match="GroupWeightOnlyConfig"):
        quantize_gptq_(model, batches, Int8WeightOnlyConfig(), progress=False)
    with pytest.raises(ValueError, match="batches"):
        quantize_gptq_(model, [], progress=False)
    tied = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 128))
    tied[1].weight = tied[0].weight
    with pytest.raises(ValueError, match="sharing"):
        quantize_gptq_(tied, [torch.randn(4, 128)], progress=False)


def test_layer_without_calibration_input_is_an_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(64, 64)
            self.unused = nn.Linear(64, 64)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="unused"):
        gptq_quantize_model(Branchy(), [torch.randn(8, 64)], group_size=32, progress=False)


def test_group_quantized_weight_dequantize_matches_op():
    w = torch.randn(16, 128)
    r = rtn_quantize_weight(w, group_size=32)
    assert isinstance(r, GroupQuantizedWeight)
    ref = torch.ops.qtorch.group_dequantize(r.packed(), r.scale, r.zero_point, 4, 32, torch.float32)
    assert torch.equal(r.dequantize(), ref)


def test_true_sequential_calibrates_each_layer_on_the_quantized_layers_before_it():
    class Block(nn.Module):  # q / k read one input (one group), out reads their product, then ffn
        def __init__(self):
            super().__init__()
            self.q, self.k, self.out, self.ffn = (nn.Linear(64, 64) for _ in range(4))

        def forward(self, x):
            return self.ffn(torch.relu(self.out(self.q(x) * self.k(x))))

    model = nn.Sequential(Block())
    batches = [correlated_inputs(48, 64, seed=s) for s in range(2)]
    float_model = copy.deepcopy(model)
    fmt = dict(bits=4, group_size=32, symmetric=False)
    results = gptq_quantize_model(model, batches, true_sequential=True, progress=False, **fmt)
    # out's Hessian comes from the quantized q and k, ffn's from the quantized q, k and out
    block, ref = model[0], float_model[0]
    x = torch.cat(batches)
    with torch.no_grad():
        h_out = hessian_of(block.q(x) * block.k(x))
        h_ffn = hessian_of(torch.relu(block.out(block.q(x) * block.k(x))))
    for name, h, lin in (("0.out", h_out, ref.out), ("0.ffn", h_ffn, ref.ffn)):
        expected = gptq_quantize_weight(lin.weight, h, act_order=True, **fmt)
        assert torch.equal(results[name].q, expected.q), name
        torch.testing.assert_close(results[name].scale, expected.scale)
    # without it, every layer of the stage sees float inputs
    plain = gptq_quantize_model(copy.deepcopy(float_model), batches, progress=False, **fmt)
    with torch.no_grad():
        h_float = hessian_of(torch.relu(ref.out(ref.q(x) * ref.k(x))))
    assert torch.equal(plain["0.ffn"].q, gptq_quantize_weight(ref.ffn.weight, h_float, act_order=True, **fmt).q)
