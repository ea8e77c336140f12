"""Loss scaling: the dynamic rule, skipped steps on inf/NaN, and the fp16 underflow it prevents."""
import copy

import pytest
import torch
import torch.nn as nn

from qtorch.amp import LossScaler, MixedPrecision


def test_dynamic_rule_growth_backoff_floor_and_cap():
    s = LossScaler()
    assert (s.scale, s.growth_interval, s.min_scale) == (2.0**16, 2000, 1.0)
    for _ in range(1999):
        s.update(found_inf=False)
    assert s.scale == 2.0**16
    s.update(found_inf=False)
    assert s.scale == 2.0**17 and s.clean_steps == 0
    s.update(found_inf=True)
    assert s.scale == 2.0**16
    s = LossScaler(4.0, min_scale=2.0, max_scale=8.0, growth_interval=1)
    s.update(True), s.update(True), s.update(True)
    assert s.scale == 2.0 and s.at_floor
    for _ in range(5):
        s.update(False)
    assert s.scale == 8.0
    static = LossScaler(128.0, dynamic=False)
    static.update(True), static.update(False)
    assert static.scale == 128.0


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(9, 11), nn.ReLU(), nn.Linear(11, 3))


def _snapshot(model, mp):
    return copy.deepcopy((model.state_dict(), mp.state_dict()))


def _assert_same(a, b):
    (model_a, mp_a), (model_b, mp_b) = a, b
    for k in model_a:
        assert torch.equal(model_a[k], model_b[k]), k
    for k in mp_a["masters"]:
        assert torch.equal(mp_a["masters"][k], mp_b["masters"][k]), k
    for i, state in mp_a["optimizer"]["state"].items():
        for key, t in state.items():
            assert torch.equal(t, mp_b["optimizer"]["state"][i][key]), (i, key)


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_injected_non_finite_gradient_skips_the_step(bad):
    model = _model()
    mp = MixedPrecision(model, torch.optim.Adam(model.parameters(), lr=1e-2), dtype=torch.float16)
    x = torch.randn(4, 9, dtype=torch.float16)
    mp.backward(model(x).float().square().mean())
    assert mp.step() and mp.loss_scale == 2.0**16  # a clean step first, so Adam has state to protect
    before = _snapshot(model, mp)
    mp.backward(model(x).float().square().mean())
    model[2].weight.grad[1, 2] = bad  # (3, 11) fp16 gradient
    assert mp.step() is False
    assert mp.loss_scale == 2.0**15 and mp.skipped_steps == 1 and mp.updates == 1
    after = _snapshot(model, mp)
    before[1]["loss_scaler"], after[1]["loss_scaler"] = None, None
    _assert_same(before, after)
    assert all(p.grad is None for p in model.parameters())
    mp.backward(model(x).float().square().mean())
    assert mp.step() and mp.updates == 2  # training resumes at the lower scale


def test_overflowing_scaled_gradients_back_off_until_they_fit():
    """Gradients ~2 · 2^16 overflow fp16 (max 65504): the scale halves per skipped step until the step fits."""
    model = nn.Linear(4, 1, bias=False)
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.0), dtype=torch.float16)
    x = torch.full((1, 4), 2.0, dtype=torch.float16)
    results = []
    for _ in range(4):
        mp.backward(model(x).float().sum())  # d loss / d w = 2, scaled: 2 · S
        results.append(mp.step())
    assert results == [False, False, True, True] and mp.loss_scale == 2.0**14


def test_scale_floor_warns_once_and_nan_loss_after_start_is_skipped():
    model = _model()
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.float16,
                        loss_scale=LossScaler(2.0, min_scale=1.0))
    x = torch.randn(2, 9, dtype=torch.float16)
    mp.backward(model(x).float().sum())
    assert mp.step()
    with pytest.warns(RuntimeWarning, match="floor"):
        for _ in range(3):
            mp.backward(model(x).float().sum() * float("nan"))  # NaN loss after an update: skipped, not raised
            assert mp.step() is False
    assert mp.loss_scale == 1.0 and mp.skipped_steps == 3


def _tiny_gradient_run(loss_scale):
    """fp16 Linear whose output gradients are ~3e-8 · y, around fp16's smallest subnormal 2^-24 ≈ 6e-8."""
    torch.manual_seed(0)
    model = nn.Linear(64, 64, bias=False)
    ref = copy.deepcopy(model)
    x = torch.randn(32, 64)
    (3e-5 * ref(x).square().mean()).backward()
    lr = 1e6  # update = lr · g ~ 1e-3: well above the fp32 rounding of the weights (~1e-8)
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=lr), dtype=torch.float16,
                        loss_scale=loss_scale)
    mp.backward(3e-5 * model(x.half()).float().square().mean())
    half_grad = model.weight.grad.clone()
    master_before = mp.optimizer.param_groups[0]["params"][0].detach().clone()
    assert mp.step()
    return ref.weight.grad, half_grad, (master_before - mp.optimizer.param_groups[0]["params"][0]) / lr


def test_fp16_without_scaling_flushes_small_gradients_that_scaling_keeps():
    ref_grad, unscaled, update_unscaled = _tiny_gradient_run(loss_scale=None)
    _, scaled, update_scaled = _tiny_gradient_run(loss_scale="dynamic")
    assert (ref_grad != 0).all()
    zeros_unscaled = int((unscaled == 0).sum())
    zeros_scaled = int((scaled == 0).sum())
    n = ref_grad.numel()
    print(f"zero gradients: fp16 unscaled {zeros_unscaled}/{n}, scaled by 2^16 {zeros_scaled}/{n}")
    assert zeros_unscaled >= 0.2 * n and zeros_scaled == 0  # measured: 1303 of 4096 flushed (32%)
    assert int((update_unscaled == 0).sum()) == zeros_unscaled  # flushed gradients never reach the master
    err_scaled = ((update_scaled - ref_grad).norm() / ref_grad.norm()).item()
    err_unscaled = ((update_unscaled - ref_grad).norm() / ref_grad.norm()).item()
    print(f"relative error of the applied gradient: unscaled {err_unscaled:.2e}, scaled {err_scaled:.2e}")
    assert err_scaled < 5e-3 and err_unscaled > 10 * err_scaled
