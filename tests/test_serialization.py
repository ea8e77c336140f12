"""Checkpoints of quantized models: plain tensors + the scheme, through safetensors, bit-exact both ways."""
import json

import pytest
import torch
import torch.nn as nn
from safetensors import safe_open

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig,
                           W8A8DynamicConfig, W8A8StaticConfig)
from qtorch.nn import QuantLinear
from qtorch.nn.scheme_state import decode_scheme

EVERY_SCHEME = PerLayerConfig({
    "0": W8A8DynamicConfig(),
    "1": W8A8StaticConfig(observer="moving_average"),
    "2": W8A8StaticConfig(output="int8"),
    "3": Int8WeightOnlyConfig(),
    "4": GroupWeightOnlyConfig(4, 32, symmetric=False, clip_search=True),
    "5": GroupWeightOnlyConfig(8, 64),
    "6": CodebookConfig(3, 32),
    "7": CodebookConfig(2),
})


def float_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(64, 64, bias=i % 2 == 0) for i in range(8)])


def quantized_model(seed=0):
    model = float_model(seed)
    qtorch.quantize_(model, EVERY_SCHEME)
    qtorch.calibrate(model, [torch.randn(8, 64) for _ in range(2)], progress=False)
    return model


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


def test_state_dict_holds_plain_tensors_and_the_scheme():
    model = quantized_model()
    state = model.state_dict()
    assert all(type(t) is torch.Tensor for t in state.values())
    assert {t.dtype for t in state.values()} <= {torch.int8, torch.uint8, torch.int32, torch.float32}
    for name, config in EVERY_SCHEME.layers.items():
        assert decode_scheme(state[f"{name}.qscheme"]) == config
    assert state["4.w_q"].dtype == torch.uint8 and state["4.w_q"].shape == (64, 32)  # int4 packed
    assert state["6.codebook"].shape == (64, 2, 8)


def test_round_trip_into_a_freshly_quantized_model(tmp_path):
    model = quantized_model(seed=0)
    path = tmp_path / "model.safetensors"
    qtorch.save_quantized(model, path)
    fresh = quantized_model(seed=1)  # other weights, same schemes
    x = torch.randn(5, 64)
    assert not torch.equal(fresh(x), model(x))
    qtorch.load_quantized(fresh, path)
    assert_same_state(fresh, model)
    assert torch.equal(fresh(x), model(x))
    assert fresh[2].forward_int8(torch.ones(2, 64, dtype=torch.int8)).dtype == torch.int8


def test_round_trip_into_a_model_built_on_meta(tmp_path):
    model = quantized_model()
    path = tmp_path / "model.safetensors"
    qtorch.save_quantized(model, path)
    config = qtorch.load_config(path)
    assert config.layers == EVERY_SCHEME.layers
    with torch.device("meta"):
        skeleton = float_model()
    summary = qtorch.quantize_(skeleton, config)
    assert len(summary.converted) == 8 and skeleton[0].w_q.device.type == "meta"
    qtorch.load_quantized(skeleton, path)
    assert all(t.device.type == "cpu" for t in skeleton.state_dict().values())
    assert_same_state(skeleton, model)
    assert skeleton[1].is_calibrated and skeleton[2].is_calibrated
    x = torch.randn(3, 7, 64)
    assert torch.equal(skeleton(x), model(x))


def test_load_state_dict_assign_directly():
    model = quantized_model()
    with torch.device("meta"):
        skeleton = float_model()
    qtorch.quantize_(skeleton, EVERY_SCHEME)
    skeleton.load_state_dict(model.state_dict(), assign=True)
    x = torch.randn(4, 64)
    assert torch.equal(skeleton(x), model(x))


def test_loading_another_scheme_is_a_clear_error(tmp_path):
    model = nn.Sequential(nn.Linear(64, 64))
    qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    path = tmp_path / "int4.safetensors"
    qtorch.save_quantized(model, path)
    other = nn.Sequential(nn.Linear(64, 64))
    qtorch.quantize_(other, GroupWeightOnlyConfig(4, 64))
    with pytest.raises(ValueError, match=r"0: the checkpoint was quantized with GroupWeightOnlyConfig\(bits=4, "
                                         r"group_size=32.*this layer with GroupWeightOnlyConfig\(bits=4, group_size=64"):
        qtorch.load_quantized(other, path)
    with pytest.raises(ValueError, match="the checkpoint was quantized with"):
        other.load_state_dict(model.state_dict())
    plain = nn.Sequential(nn.Linear(64, 64))
    with pytest.raises(ValueError, match=r"0: the checkpoint holds a layer quantized with .* the model has Linear; "
                                         r"run qtorch.quantize_"):
        qtorch.load_quantized(plain, path)
    with pytest.raises(ValueError, match="holds a float nn.Linear weight"):
        other.load_state_dict(nn.Sequential(nn.Linear(64, 64)).state_dict())


def test_not_a_qtorch_checkpoint(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a qtorch quantized checkpoint"):
        qtorch.load_config(path)


def test_tied_layers_are_stored_once_and_stay_tied(tmp_path):
    shared, twin = nn.Linear(64, 64), nn.Linear(64, 64)
    twin.weight = shared.weight
    model = nn.ModuleDict({"a": shared, "again": shared, "twin": twin})
    qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    path = tmp_path / "tied.safetensors"
    qtorch.save_quantized(model, path)
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        aliases = json.loads(f.metadata()["aliases"])
    assert "twin.w_q" not in keys and aliases["twin.w_q"] == "a.w_q"
    with torch.device("meta"):
        shared2, twin2 = nn.Linear(64, 64), nn.Linear(64, 64)
        twin2.weight = shared2.weight
        skeleton = nn.ModuleDict({"a": shared2, "again": shared2, "twin": twin2})
    qtorch.quantize_(skeleton, qtorch.load_config(path))
    qtorch.load_quantized(skeleton, path)
    assert skeleton["a"] is skeleton["again"]
    assert skeleton["twin"].w_q.data_ptr() == skeleton["a"].w_q.data_ptr()
    assert_same_state(skeleton, model)


def test_save_refuses_meta_tensors(tmp_path):
    with torch.device("meta"):
        skeleton = float_model()
    qtorch.quantize_(skeleton, Int8WeightOnlyConfig())
    with pytest.raises(ValueError, match="is on the meta device"):
        qtorch.save_quantized(skeleton, tmp_path / "x.safetensors")


def test_qscheme_records_every_config_field():
    layer = QuantLinear.from_float(nn.Linear(64, 8), W8A8StaticConfig(observer="percentile", percentile=99.5))
    assert decode_scheme(layer.qscheme) == W8A8StaticConfig(observer="percentile", percentile=99.5)
    with pytest.raises(ValueError, match="qscheme"):
        decode_scheme(torch.tensor([1, 2, 3], dtype=torch.uint8))
