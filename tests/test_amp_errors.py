"""Bad input to MixedPrecision gets a clear ValueError / TypeError naming the argument."""
import pytest
import torch
import torch.nn as nn

from qtorch.amp import LossScaler, MixedPrecision


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 2))


def _wrap(model=None, **kwargs):
    model = model or _model()
    return model, MixedPrecision(model, torch.optim.Adam(model.parameters()), **kwargs)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"dtype": torch.float32}, ValueError, "dtype"),
    ({"dtype": "fp16"}, ValueError, "dtype"),
    ({"loss_scale": "static"}, ValueError, "loss_scale"),
    ({"loss_scale": -8.0}, ValueError, "loss_scale"),
    ({"loss_scale": float("nan")}, ValueError, "loss_scale"),
    ({"fp32_modules": [3]}, TypeError, "fp32_modules"),
    ({"fp32_modules": 5}, TypeError, "fp32_modules"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _wrap(**kwargs)


def test_bad_model_and_optimizer_types():
    model = _model()
    with pytest.raises(TypeError, match="model"):
        MixedPrecision(lambda x: x, torch.optim.SGD(model.parameters(), lr=1))
    with pytest.raises(TypeError, match="optimizer"):
        MixedPrecision(model, list(model.parameters()))


@pytest.mark.parametrize("kwargs, match", [
    ({"init_scale": 0}, "init_scale"), ({"growth_factor": 1.0}, "growth_factor"),
    ({"backoff_factor": 1.5}, "backoff_factor"), ({"growth_interval": 0}, "growth_interval"),
    ({"init_scale": 0.5, "min_scale": 1.0}, "init_scale"), ({"min_scale": float("inf")}, "min_scale"),
])
def test_bad_loss_scaler(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossScaler(**kwargs)


def test_parameters_not_held_by_the_optimizer():
    model = _model()
    with pytest.raises(ValueError, match=r"\['1.weight', '1.bias', '2.weight', '2.bias'\].*not held by optimizer"):
        MixedPrecision(model, torch.optim.SGD(model[0].parameters(), lr=0.1))
    stranger = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="not a parameter of model"):
        MixedPrecision(model, torch.optim.SGD([*model.parameters(), stranger], lr=0.1))


def test_integer_parameters():
    model = _model()
    model.register_parameter("codes", nn.Parameter(torch.arange(4), requires_grad=False))
    with pytest.raises(TypeError, match="'codes' has dtype torch.int64"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1))
    mp = MixedPrecision(model, torch.optim.SGD([p for p in model.parameters() if p.is_floating_point()], lr=0.1))
    assert model.codes.dtype == torch.int64 and torch.equal(model.codes, torch.arange(4))  # left alone
    assert mp.memory_breakdown()["other_params"] == 4 * 8


def test_already_half_parameters_are_accepted():
    model = _model().half()
    values = model[0].weight.detach().clone()
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.float16)
    master = mp.optimizer.param_groups[0]["params"][0]
    assert master.dtype == torch.float32 and torch.equal(master, values.float())
    assert model[1].weight.dtype == torch.float32  # the LayerNorm is upcast


def test_values_outside_the_half_range_or_nan():
    model = _model().bfloat16()
    with torch.no_grad():
        model[0].weight[0, 0] = 1e6  # fine in bf16, inf in fp16
    with pytest.raises(ValueError, match="'0.weight'.*beyond the range of torch.float16"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.float16)
    assert model[0].weight.dtype == torch.bfloat16  # nothing was converted
    model = _model()
    with torch.no_grad():
        model[2].bias[1] = float("nan")
    with pytest.raises(ValueError, match="'2.bias' holds NaN"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_devices():
    model = _model()
    model[2].bias = nn.Parameter(torch.zeros(2, device="meta"))
    with pytest.raises(ValueError, match="span devices"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1))
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    opt.state[model[0].weight]["exp_avg"] = torch.zeros(6, 5, device="meta")  # state from elsewhere
    with pytest.raises(ValueError, match="state 'exp_avg' of parameter '0.weight' is on meta"):
        MixedPrecision(model, opt)


def test_nan_loss_at_step_zero():
    model, mp = _wrap()
    loss = model(torch.randn(2, 5, dtype=torch.float16)).float().sum() * float("nan")
    with pytest.raises(ValueError, match="loss: is nan before the first update"):
        mp.backward(loss)
    _, mp_bf16 = _wrap(dtype=torch.bfloat16)  # no loss scaling, nothing would skip: still caught
    with pytest.raises(ValueError, match="loss"):
        mp_bf16.backward(torch.tensor(float("inf"), requires_grad=True))


def test_bad_backward_step_and_double_wrap():
    model, mp = _wrap()
    out = model(torch.randn(2, 5, dtype=torch.float16))
    with pytest.raises(ValueError, match="loss: expected a one-element tensor"):
        mp.backward(out)
    with pytest.raises(ValueError, match="loss: does not require grad"):
        mp.backward(out.detach().sum())
    with pytest.raises(ValueError, match="max_grad_norm"):
        mp.step(max_grad_norm=-1.0)
    with pytest.raises(RuntimeError, match="call backward"):
        mp.step()
    with pytest.raises(ValueError, match="already converted"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_tied_parameter_across_precisions():
    model = nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6))
    model[0].bias = model[1].weight  # one (6,) parameter used by an fp16 Linear and an fp32 LayerNorm
    with pytest.raises(ValueError, match="shared between an fp32 module and a half-precision one"):
        MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_load_state_dict_mismatch():
    model, mp = _wrap()
    state = mp.state_dict()
    _, other = _wrap(dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="dtype"):
        other.load_state_dict(state)
    _, other = _wrap(loss_scale=None)
    with pytest.raises(ValueError, match="loss scaling"):
        other.load_state_dict(state)
    bigger = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 2))
    _, other = _wrap(bigger)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="state"):
        mp.load_state_dict({"masters": {}})
