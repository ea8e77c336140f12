"""quantize_, dequantize_, calibrate and compare on whole models."""
import copy

import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.config import (GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)
from qtorch.models.llama import build_llama
from qtorch.nn import QuantLinear
from qtorch.quant import sqnr_db


class Net(nn.Module):
    """Linear layers inside a Sequential, a ModuleList and a ModuleDict, plus a non-Linear module."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
        self.blocks = nn.ModuleList([nn.Linear(64, 64), nn.Linear(64, 64, bias=False)])
        self.heads = nn.ModuleDict({"a": nn.Linear(64, 32), "b": nn.Linear(64, 8)})
        self.norm = nn.LayerNorm(64)

    def forward(self, x):
        h = self.norm(self.seq(x))
        for blk in self.blocks:
            h = h + blk(h)
        return torch.cat([self.heads["a"](h), self.heads["b"](h)], dim=-1)


NAMES = ["seq.0", "seq.2", "blocks.0", "blocks.1", "heads.a", "heads.b"]


def test_quantize_swaps_linear_everywhere_and_reports_bytes():
    model = Net()
    x = torch.randn(4, 64)
    ref = model(x).detach()
    weights = {n: m.weight.numel() * 4 for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    summary = qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    assert summary.converted == NAMES and summary.skipped == []
    assert all(isinstance(model.get_submodule(n), QuantLinear) for n in NAMES)
    assert summary.weight_bytes_before == sum(weights.values())
    assert summary.weight_bytes_after == sum(model.get_submodule(n).weight_bytes for n in NAMES)
    assert summary.compression > 5  # 32 bits -> 5.25 bits per weight
    assert "6 layers converted" in str(summary)
    assert sqnr_db(ref, model(x).detach()) > 12


def test_skip_patterns_min_features_and_filter_fn():
    model = Net()
    summary = qtorch.quantize_(model, Int8WeightOnlyConfig(), skip=("heads.*",), min_features=64,
                               filter_fn=lambda m, name: name != "blocks.1")
    assert summary.converted == ["seq.0", "seq.2", "blocks.0"]
    reasons = dict(summary.skipped)
    assert reasons["heads.a"] == "matches skip pattern 'heads.*'" and "filter_fn" in reasons["blocks.1"]
    model = Net()
    summary = qtorch.quantize_(model, Int8WeightOnlyConfig(), min_features=16)
    assert dict(summary.skipped) == {"heads.b": "smaller than min_features=16"}
    assert isinstance(model.heads["b"], nn.Linear)


def test_per_layer_config_and_none():
    model = Net()
    config = PerLayerConfig({"seq.0": W8A8DynamicConfig(), "heads.b": None}, default=GroupWeightOnlyConfig(8, 32))
    summary = qtorch.quantize_(model, config)
    assert summary.schemes["seq.0"] == W8A8DynamicConfig()
    assert summary.schemes["blocks.0"] == GroupWeightOnlyConfig(8, 32)
    assert isinstance(model.heads["b"], nn.Linear)
    assert model(torch.randn(3, 64)).shape == (3, 40)


def test_tied_weights_are_respected():
    shared = nn.Linear(64, 64)
    twin = nn.Linear(64, 64)
    twin.weight = shared.weight  # two Linear layers, one weight, two biases
    emb = nn.Embedding(10, 64)
    out = nn.Linear(64, 10, bias=False)
    out.weight = emb.weight  # tied to an embedding
    model = nn.ModuleDict({"a": shared, "again": shared, "twin": twin, "emb": emb, "out": out})
    summary = qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    assert model["a"] is model["again"]  # one module in two places stays one QuantLinear
    assert model["twin"] is not model["a"]
    assert model["twin"].w_q.data_ptr() == model["a"].w_q.data_ptr()  # weights stored once
    assert not torch.equal(model["twin"].bias, model["a"].bias)
    assert summary.converted == ["a", "again", "twin"]
    assert summary.weight_bytes_before == 64 * 64 * 4 and summary.weight_bytes_after == model["a"].weight_bytes
    reason = dict(summary.skipped)["out"]
    assert "tied to emb.weight" in reason and isinstance(model["out"], nn.Linear)


def test_multihead_attention_projection_is_left_alone():
    model = nn.Sequential(nn.Linear(32, 32))
    model.append(nn.MultiheadAttention(32, 4))
    summary = qtorch.quantize_(model, Int8WeightOnlyConfig())
    assert summary.converted == ["0"]
    assert "MultiheadAttention" in dict(summary.skipped)["1.out_proj"]


def test_quantize_errors_name_the_layer():
    model = nn.Sequential(nn.Linear(64, 8), nn.Linear(8, 8))
    with pytest.raises(ValueError, match=r"^1: in_features: 8 is not divisible by group_size=32"):
        qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    with pytest.raises(TypeError, match="config: expected one of"):
        qtorch.quantize_(model, {"bits": 4})
    with pytest.raises(TypeError, match="filter_fn"):
        qtorch.quantize_(model, Int8WeightOnlyConfig(), filter_fn="0")
    with pytest.raises(ValueError, match="min_features"):
        qtorch.quantize_(model, Int8WeightOnlyConfig(), min_features=-1)
    with pytest.raises(TypeError, match="model: got a bare nn.Linear"):
        qtorch.quantize_(nn.Linear(64, 8), Int8WeightOnlyConfig())
    bad = nn.Sequential(nn.Linear(64, 8))
    with torch.no_grad():
        bad[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^0: linear.weight: contains 1 NaN"):
        qtorch.quantize_(bad, Int8WeightOnlyConfig())


def test_dequantize_restores_linear_with_the_dequantized_weight():
    model = Net()
    quantized = copy.deepcopy(model)
    qtorch.quantize_(quantized, GroupWeightOnlyConfig(4, 32))
    w_hat = quantized.seq[0].dequantize_weight()
    x = torch.randn(5, 64)
    y_q = quantized(x)
    names = qtorch.dequantize_(quantized)
    assert names == NAMES
    assert type(quantized.seq[0]) is nn.Linear and torch.equal(quantized.seq[0].weight, w_hat)
    torch.testing.assert_close(quantized(x), y_q, rtol=1e-5, atol=1e-6)


def test_dequantize_keeps_ties():
    shared = nn.Linear(64, 64)
    twin = nn.Linear(64, 64)
    twin.weight = shared.weight
    model = nn.ModuleDict({"a": shared, "again": shared, "twin": twin})
    qtorch.quantize_(model, Int8WeightOnlyConfig())
    qtorch.dequantize_(model, dtype=torch.bfloat16)
    assert model["a"] is model["again"] and model["twin"].weight is model["a"].weight
    assert model["a"].weight.dtype == torch.bfloat16


def test_calibrate_static_model_with_progress_bar(capsys):
    model = Net()
    x = torch.randn(16, 64)
    ref = model(x).detach()
    qtorch.quantize_(model, W8A8StaticConfig(observer="percentile"))
    with pytest.raises(RuntimeError, match="not calibrated"):
        model(x)
    names = qtorch.calibrate(model, [torch.randn(16, 64) for _ in range(4)])
    assert names == NAMES
    assert "calibrate" in capsys.readouterr().err  # tqdm writes to stderr
    assert all(model.get_submodule(n).is_calibrated for n in NAMES)
    assert sqnr_db(ref, model(x).detach()) > 25


def test_calibrate_errors():
    with pytest.raises(ValueError, match="no W8A8StaticConfig layers"):
        qtorch.calibrate(Net(), [torch.randn(2, 64)])
    model = Net()
    qtorch.quantize_(model, W8A8StaticConfig())
    with pytest.raises(ValueError, match="batches: no batch"):
        qtorch.calibrate(model, [], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        qtorch.calibrate(model, [torch.full((2, 64), float("nan"))], progress=False)
    assert not model.seq[0].observing  # left in a clean state
    partial = nn.ModuleDict({"used": nn.Linear(8, 8), "unused": nn.Linear(8, 8)})
    partial.forward = lambda x: partial["used"](x)
    qtorch.quantize_(partial, W8A8StaticConfig())
    with pytest.raises(ValueError, match="saw no data during calibration: unused"):
        qtorch.calibrate(partial, [torch.randn(2, 8)], progress=False)


def test_compare_reports_per_layer_and_output_error():
    float_model = build_llama("tiny")
    quant_model = copy.deepcopy(float_model)
    qtorch.quantize_(quant_model, PerLayerConfig({"layers.0.attention.wq": GroupWeightOnlyConfig(4, 32)},
                                                 default=Int8WeightOnlyConfig()))
    tokens = torch.randint(0, 512, (2, 12))
    report = qtorch.compare(float_model, quant_model, tokens)
    rows = {r.name: r for r in report.layers}
    assert len(rows) == 15 and "output" in rows
    first = rows["layers.0.attention.wq"]
    assert first.sqnr_db == pytest.approx(first.local_sqnr_db)  # nothing upstream is quantized
    assert first.sqnr_db < rows["layers.0.attention.wk"].local_sqnr_db - 15  # 4-bit vs 8-bit: ~24 dB apart
    with torch.no_grad():
        assert report.output_sqnr_db == pytest.approx(sqnr_db(float_model(tokens), quant_model(tokens)))
    text = report.table()
    assert "layers.0.attention.wq" in text and "(model output)" in text and str(report) == text


def test_compare_errors():
    model = Net()
    with pytest.raises(ValueError, match="quantize_ a copy.deepcopy"):
        qtorch.compare(model, model, torch.randn(2, 64))
    with pytest.raises(ValueError, match="no QuantLinear layers"):
        qtorch.compare(model, Net(), torch.randn(2, 64))
    other = nn.Sequential(nn.Linear(64, 8))
    qtorch.quantize_(other, Int8WeightOnlyConfig())
    with pytest.raises(ValueError, match="float_model: has no modules named 0"):
        qtorch.compare(model, other, torch.randn(2, 64))
    with pytest.raises(TypeError, match="batch: expected a tensor"):
        qtorch.compare(nn.Sequential(nn.Linear(64, 8)), other, 3.0)


def test_public_names_are_exported_lazily():
    for name in ("quantize_", "dequantize_", "calibrate", "compare", "plan_bits", "save_quantized", "load_quantized",
                 "load_config", "QuantLinear", "W8A8DynamicConfig", "W8A8StaticConfig", "Int8WeightOnlyConfig",
                 "GroupWeightOnlyConfig", "CodebookConfig", "PerLayerConfig", "cuda_kernels_available"):
        assert name in qtorch.__all__ and getattr(qtorch, name) is not None
    with pytest.raises(AttributeError):
        qtorch.not_a_name  # noqa: B018
