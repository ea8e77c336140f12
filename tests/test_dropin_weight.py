"""`.weight` of a QuantLinear: float metadata for free, values dequantized on use (warned once), and PyTorch's own
transformer modules (fast path on and off, torch.compile fullgraph) run the quantized layers."""
import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import qtorch
from qtorch.config import CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig
from qtorch.nn import QuantLinear
from qtorch.nn.dequantized_weight import DequantizedWeight
from qtorch.ops import _registry
from qtorch.quant import sqnr_db

BACKEND = "aot_eager"  # traces the full graph (dynamo + AOT autograd) without inductor's C++ build time on CPU
CONFIGS = [W8A8DynamicConfig(), GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False), Int8WeightOnlyConfig(),
           CodebookConfig(bits=4)]


def _layer(config, k=64, n=24):
    return QuantLinear.from_float(nn.Linear(k, n), config)


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_weight_metadata_cost_no_dequantization(config, monkeypatch):
    layer = _layer(config)
    monkeypatch.setattr(type(layer), "dequantize_weight", lambda *a, **k: pytest.fail("dequantized"))
    w = layer.weight
    assert isinstance(w, DequantizedWeight) and not isinstance(w, nn.Parameter)
    assert w.shape == (24, 64) and w.dtype == torch.float32 and w.device == torch.device("cpu")
    assert not w.requires_grad and "weight" not in layer.state_dict()
    layer.half()
    assert layer.weight.dtype == torch.float16 and layer.bias.dtype == torch.float16
    layer.to(torch.bfloat16)
    assert layer.weight.dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for name, t in layer.named_buffers() if name in ("w_scale", "codebook"))


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_f_linear_on_weight_runs_dequantized_and_warns_once(config, monkeypatch):
    monkeypatch.setattr(_registry, "_warned", set())
    layer = _layer(config)
    x = torch.randn(5, 64)
    expected = F.linear(x, layer.dequantize_weight(), layer.bias)
    with pytest.warns(RuntimeWarning, match="dequantized float weight"):
        y = F.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(y, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.linear(x, layer.weight, layer.bias)  # warned once only


def test_weight_under_compile_is_dropped_when_only_metadata_is_read():
    layer = _layer(GroupWeightOnlyConfig(bits=4, group_size=32))
    fn = torch.compile(lambda x: layer(x) * (layer.weight.shape[1] / 64), fullgraph=True, backend=BACKEND)
    x = torch.randn(3, 64)
    torch.testing.assert_close(fn(x), layer(x))


@pytest.mark.parametrize("config, min_db", [(W8A8DynamicConfig(), 30.0), (GroupWeightOnlyConfig(), 15.0)], ids=repr)
def test_transformer_encoder_fast_path_on_off_and_compiled(config, min_db):
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, 512, batch_first=True), 2).eval()
    x = torch.randn(2, 5, 256)
    with torch.no_grad():
        ref = model(x)
    qtorch.quantize_(model, config)
    assert sum(p.numel() for p in model.parameters()) > 0 and next(model.parameters()).device.type == "cpu"
    outs = {}
    for fast in (True, False):
        torch.backends.mha.set_fastpath_enabled(fast)
        try:
            with torch.no_grad():
                outs[f"eager fast={fast}"] = model(x)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    with torch.no_grad():
        outs["compiled"] = torch.compile(model, fullgraph=True, backend=BACKEND)(x)
    outs["grad mode"] = model(x).detach()
    base = outs["eager fast=False"]
    assert sqnr_db(ref, base) > min_db
    for name, y in outs.items():  # the fused fast path would run linear1/linear2 in float and differ for W8A8
        torch.testing.assert_close(y, base, atol=2e-5, rtol=2e-5, msg=name)


def test_multihead_attention_with_quantized_out_proj(monkeypatch):
    monkeypatch.setattr(_registry, "_warned", set())
    mha = nn.MultiheadAttention(64, 4, batch_first=True).eval()
    mha.out_proj = QuantLinear.from_float(mha.out_proj, W8A8DynamicConfig())
    dequantized = copy.deepcopy(mha)
    dequantized.out_proj = nn.Linear(64, 64)
    with torch.no_grad():
        dequantized.out_proj.weight.copy_(mha.out_proj.dequantize_weight())
        dequantized.out_proj.bias.copy_(mha.out_proj.bias)
    q = torch.randn(2, 7, 64)
    with torch.no_grad():
        ref = dequantized(q, q, q)[0]
        with pytest.warns(RuntimeWarning, match="dequantized float weight"):
            y_fast = mha(q, q, q)[0]
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            y_slow = mha(q, q, q)[0]
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
        y_compiled = torch.compile(mha, fullgraph=True, backend=BACKEND)(q, q, q)[0]
    for y in (y_fast, y_slow, y_compiled):
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


def test_llama_quantized_weight_and_compile():
    from qtorch.models.llama import build_llama

    model = build_llama("tiny")
    qtorch.quantize_(model, GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False))
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert layers and all(m.weight.shape == (m.out_features, m.in_features) for m in layers)
    assert all(m.weight.dtype == torch.float32 for m in layers)
    assert next(model.parameters()).device.type == "cpu"
    names = {name for name, m in model.named_modules() if isinstance(m, QuantLinear)}
    assert not any(key.rsplit(".", 1)[0] in names for key in model.state_dict() if key.endswith(".weight"))
    tokens = torch.randint(0, 256, (2, 8))
    with torch.no_grad():
        eager = model(tokens)
        compiled = torch.compile(model, fullgraph=True, backend=BACKEND)(tokens)
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
