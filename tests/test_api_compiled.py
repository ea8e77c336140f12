"""torch.compile'd models through quantize_, save_quantized, load_config and load_quantized (issue 13, item 4)."""
import pytest
import torch
import torch.nn as nn

import qtorch
import qtorch.api.serialization as serialization
from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig
from qtorch.nn import QuantLinear

CONFIG = GroupWeightOnlyConfig(4, 32)


def _float_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 32))


def _compiled(model):
    return torch.compile(model, backend="eager")  # dynamo's guards and recompiles, without a C++ build


def test_quantize_a_compiled_model_and_it_recompiles():
    model = _float_model()
    compiled = _compiled(model)
    x = torch.randn(3, 64)
    compiled(x)  # compiled once with the float layers
    summary = qtorch.quantize_(compiled, CONFIG)
    assert summary.converted == ["0", "2"]  # names of the model itself, no _orig_mod.
    assert isinstance(model[0], QuantLinear) and isinstance(model[2], QuantLinear)
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)  # the wrapper runs the quantized layers
    assert qtorch.dequantize_(compiled) == ["0", "2"]


@pytest.mark.parametrize("save_compiled,load_compiled", [(True, False), (False, True), (True, True)])
def test_checkpoints_move_between_compiled_and_uncompiled_models(tmp_path, save_compiled, load_compiled):
    model = _float_model()
    qtorch.quantize_(model, CONFIG)
    x = torch.randn(5, 64)
    expected = model(x)
    path = tmp_path / "model.safetensors"
    qtorch.save_quantized(_compiled(model) if save_compiled else model, path)
    assert set(qtorch.load_config(path).layers) == {"0", "2"}
    fresh_float = _float_model(seed=1)
    fresh = _compiled(fresh_float) if load_compiled else fresh_float
    summary = qtorch.quantize_(fresh, qtorch.load_config(path))  # the advice of load_quantized's error
    assert summary.converted == ["0", "2"] and summary.skipped == []
    assert qtorch.load_quantized(fresh, path) is not None
    torch.testing.assert_close(fresh(x), expected, rtol=0, atol=0)


def test_a_checkpoint_written_with_the_orig_mod_prefix_still_loads(tmp_path, monkeypatch):
    model = _float_model()
    qtorch.quantize_(model, W8A8DynamicConfig())
    path = tmp_path / "old.safetensors"
    with monkeypatch.context() as m:  # how save_quantized wrote a compiled model before: names with _orig_mod.
        m.setattr(serialization, "canonical_name", lambda name: name)
        qtorch.save_quantized(_compiled(model), path)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        assert all(k.startswith("_orig_mod.") for k in f.keys())
    fresh = _float_model(seed=2)
    assert qtorch.quantize_(fresh, qtorch.load_config(path)).converted == ["0", "2"]
    qtorch.load_quantized(fresh, path)
    x = torch.randn(2, 64)
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
