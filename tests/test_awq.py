"""AWQ (qtorch.algorithms.awq_): the float function is unchanged, and 4-bit group weights lose less output accuracy
than round-to-nearest on activations with salient channels, alone, with the clipping search and under GPTQ."""
import copy

import pytest
import torch
from outlier_models import TwoBranch, errors_without_and_with, outlier_inputs, relative_error

import qtorch
from qtorch.algorithms import awq_, awq_scale, quantize_gptq_
from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig

W4 = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False)
W4_CLIP = GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False, clip_search=True)


@pytest.fixture(scope="module")
def data():
    return outlier_inputs(4, 64, 256, seed=0, size=20.0), outlier_inputs(2, 64, 256, seed=1, size=20.0)[0]


def test_scale_formula():
    s = awq_scale(torch.tensor([4.0, 1.0, 0.25]), 0.5)
    assert torch.allclose(s, torch.tensor([2.0, 1.0, 0.5]))  # √mean|x|, over √(max·min) = 1
    assert torch.equal(awq_scale(torch.tensor([3.0, 1.0]), 0.0), torch.ones(2))


def test_scaling_keeps_the_float_function(data):
    calib, x = data
    model = TwoBranch()
    ref = model(x)
    chosen = awq_(model, calib, W4, alpha=0.5)
    assert set(chosen) == {"a", "b", "c"}
    assert torch.allclose(model(x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config, gain", [(W4, 0.8), (W4_CLIP, 0.98)], ids=["rtn", "clip"])
def test_awq_lowers_4_bit_error_on_salient_channels(data, config, gain):
    """Against the same format without AWQ (the clipping search alone already removes part of the error)."""
    err_rtn, err_awq = errors_without_and_with(awq_, config, *data)
    assert err_awq < gain * err_rtn, (err_awq, err_rtn)


def test_awq_composes_with_gptq(data):
    calib, x = data
    model = TwoBranch()
    ref = model(x)
    rtn, awq_gptq = copy.deepcopy(model), copy.deepcopy(model)
    qtorch.quantize_(rtn, W4)
    awq_(awq_gptq, calib, W4_CLIP)
    summary = quantize_gptq_(awq_gptq, calib, W4, progress=False)
    assert len(summary.converted) == 3
    assert relative_error(ref, awq_gptq(x)) < 0.8 * relative_error(ref, rtn(x))


def test_bad_arguments(data):
    calib, _ = data
    with pytest.raises(TypeError, match="config"):
        awq_(TwoBranch(), calib, W8A8DynamicConfig())
    with pytest.raises(ValueError, match="alpha"):
        awq_(TwoBranch(), calib, alpha=-0.1)
    with pytest.raises(ValueError, match="group_size=128 does not divide"):
        awq_(torch.nn.Sequential(torch.nn.Linear(96, 8)), [torch.randn(4, 96)], W4)
    with pytest.raises(ValueError, match="no float nn.Linear layer to scale"):
        awq_(TwoBranch(), calib, filter_fn=lambda lin, name: False)
