"""SmoothQuant (qtorch.algorithms.smooth_quant_): the float function is unchanged, scales follow the formula, folds
and shared inputs are handled, and W8A8 error drops below plain round-to-nearest on activations with outliers."""
import pytest
import torch
import torch.nn as nn
from outlier_models import TwoBranch, errors_without_and_with, outlier_inputs

from qtorch.algorithms import InputScaledLinear, smooth_quant_, smoothing_scale
from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig, W8A8StaticConfig


@pytest.fixture(scope="module")
def data():
    return outlier_inputs(4, 64, 256, seed=0), outlier_inputs(2, 64, 256, seed=1)[0]  # calibration, evaluation


def test_smoothing_keeps_the_float_function_and_folds(data):
    calib, x = data
    model = TwoBranch()
    ref = model(x)
    chosen = smooth_quant_(model, calib, W8A8StaticConfig(), alpha=0.5, folds={"c": "a"})
    assert set(chosen) == {"a", "b", "c"} and set(chosen.values()) == {0.5}
    assert torch.allclose(model(x), ref, rtol=1e-4, atol=1e-4)
    assert isinstance(model.a, InputScaledLinear) and isinstance(model.b, InputScaledLinear)
    assert torch.equal(model.a.inv_scale, model.b.inv_scale)  # a and b read one input: one scale
    assert isinstance(model.c, nn.Linear)  # folded into a's rows: no run-time multiply


def test_scale_formula():
    x_absmax, w_absmax = torch.tensor([4.0, 1.0, 0.0]), torch.tensor([1.0, 4.0, 2.0])
    s = smoothing_scale(x_absmax, w_absmax, 0.5)
    assert torch.allclose(s, torch.tensor([2.0, 0.5, 1.0]))  # √4/√1, √1/√4, inactive channel kept at 1


@pytest.mark.parametrize("config", [W8A8StaticConfig(), W8A8DynamicConfig()], ids=["static", "dynamic"])
def test_smoothing_lowers_w8a8_error_on_outlier_activations(data, config):
    err_rtn, err_smooth = errors_without_and_with(smooth_quant_, config, *data)
    assert err_smooth < 0.5 * err_rtn, (err_smooth, err_rtn)


def test_searched_alpha_never_worse_than_no_smoothing(data):
    calib, _ = data
    model = TwoBranch()
    no_outliers = [torch.randn(64, 256) for _ in range(2)]
    chosen = smooth_quant_(model, no_outliers, W8A8DynamicConfig())
    assert set(chosen) == {"a", "b", "c"}  # None (no smoothing) is a candidate of the search
    assert all(a is None or 0.0 < a < 1.0 for a in chosen.values())


def test_bad_arguments(data):
    calib, _ = data
    with pytest.raises(TypeError, match="config"):
        smooth_quant_(TwoBranch(), calib, GroupWeightOnlyConfig())
    with pytest.raises(ValueError, match="alpha"):
        smooth_quant_(TwoBranch(), calib, alpha=1.5)
    with pytest.raises(ValueError, match="batches"):
        smooth_quant_(TwoBranch(), [])
    with pytest.raises(ValueError, match="no float nn.Linear layer to smooth"):
        smooth_quant_(TwoBranch(), calib, filter_fn=lambda lin, name: False)
