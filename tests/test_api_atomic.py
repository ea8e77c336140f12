"""quantize_ checks every layer before converting any, and says what it did (issue 13, item 4)."""
import re
import warnings

import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig, W8A8DynamicConfig
from qtorch.nn import QuantLinear


def _model():
    # in_features 64, 48, 64: group_size 32 fits the first and last, not the middle one
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 8))


def test_an_incompatible_layer_converts_nothing_and_names_the_way_out():
    model = _model()
    x = torch.randn(3, 64)
    before = model(x)
    with pytest.raises(ValueError) as info:
        qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32))
    message = str(info.value)
    assert message.startswith("2: in_features: 48 is not divisible by group_size=32")
    assert "nothing was converted" in message
    for option in ("skip=['2']", "min_features=49", "filter_fn", "on_incompatible='skip'"):
        assert option in message
    assert not any(isinstance(m, QuantLinear) for m in model.modules())  # layer 0 (before it) left float too
    assert torch.equal(model(x), before)


def test_every_incompatible_layer_is_listed():
    model = nn.Sequential(nn.Linear(48, 64), nn.Linear(64, 64), nn.Linear(96, 8))
    with pytest.raises(ValueError, match=r"(?s)^0: in_features: 48 .*\n2: in_features: 96 .*skip=\['0', '2'\]"):
        qtorch.quantize_(model, GroupWeightOnlyConfig(4, 64))


def test_on_incompatible_skip_warns_once_listing_the_layers():
    model = _model()
    with pytest.warns(UserWarning, match=r"left float.*2 \(in_features: 48 is not divisible") as record:
        summary = qtorch.quantize_(model, GroupWeightOnlyConfig(4, 32), on_incompatible="skip")
    assert len(record) == 1
    assert summary.converted == ["0", "4"]
    assert dict(summary.skipped)["2"].startswith("incompatible: in_features: 48")
    assert type(model[2]) is nn.Linear and isinstance(model[0], QuantLinear)
    with pytest.raises(ValueError, match="on_incompatible: expected one of"):
        qtorch.quantize_(_model(), Int8WeightOnlyConfig(), on_incompatible="ignore")


def test_a_non_finite_weight_is_found_before_anything_is_converted():
    model = _model()
    with torch.no_grad():
        model[4].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^4: linear.weight: contains 0 NaN and 1 Inf"):
        qtorch.quantize_(model, W8A8DynamicConfig())
    assert not any(isinstance(m, QuantLinear) for m in model.modules())


def test_nothing_converted_warns():
    with pytest.warns(UserWarning, match="no layer converted: the model has no nn.Linear layer"):
        summary = qtorch.quantize_(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), Int8WeightOnlyConfig())
    assert summary.converted == []
    with pytest.warns(UserWarning, match=r"no layer converted: all 3 nn.Linear layers were skipped \(0: matches"):
        qtorch.quantize_(_model(), Int8WeightOnlyConfig(), skip="*")


def test_a_second_call_with_another_config_warns_and_leaves_the_layers():
    model = _model()
    qtorch.quantize_(model, Int8WeightOnlyConfig())
    with pytest.warns(UserWarning) as record:
        qtorch.quantize_(model, W8A8DynamicConfig())
    messages = [str(w.message) for w in record]
    assert any(re.search(r"3 layer\(s\) already quantized with another config.*dequantize_", m) for m in messages)
    assert any("no layer converted: the model has no nn.Linear layer (3 already quantized)" in m for m in messages)
    assert all(m.config == Int8WeightOnlyConfig() for m in model.modules() if isinstance(m, QuantLinear))
    # the same config again, or a PerLayerConfig that does not touch them: nothing to say about them
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        qtorch.quantize_(model, Int8WeightOnlyConfig())
        qtorch.quantize_(model, PerLayerConfig({"9": W8A8DynamicConfig()}))
    assert not any("another config" in str(w.message) for w in record)


def test_a_tensor_instead_of_a_model_is_a_clear_error():
    with pytest.raises(TypeError, match=r"model: expected an nn.Module, got Tensor \(a tensor: pass the model"):
        qtorch.quantize_(torch.randn(8, 8), Int8WeightOnlyConfig())
    with pytest.raises(TypeError, match="model: expected an nn.Module, got Tensor"):
        qtorch.dequantize_(torch.randn(8, 8))
