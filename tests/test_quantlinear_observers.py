"""Observers of static activation quantization: the ranges they keep and the (S, Z) they give."""
import pytest
import torch

from qtorch.config import W8A8StaticConfig
from qtorch.observers import MinMaxObserver, MovingAverageObserver, PercentileObserver, make_observer
from qtorch.quant import qparams_from_minmax


def test_minmax_keeps_the_extremes_of_all_batches():
    obs = MinMaxObserver()
    obs.observe(torch.tensor([[0.5, 2.0], [-1.0, 0.0]]))
    obs.observe(torch.tensor([3.0, -0.5], dtype=torch.bfloat16))
    assert float(obs.r_min) == -1.0 and float(obs.r_max) == 3.0
    scale, zp = obs.qparams()
    expected = qparams_from_minmax(torch.tensor(-1.0), torch.tensor(3.0), 8)
    assert torch.equal(scale, expected[0].reshape(1)) and torch.equal(zp, expected[1].reshape(1))
    assert scale.shape == (1,) and scale.dtype == torch.float32 and zp.dtype == torch.int32


def test_moving_average_follows_each_batch_with_its_constant():
    obs = MovingAverageObserver(averaging_constant=0.25)
    obs.observe(torch.tensor([-2.0, 4.0]))  # first batch initialises
    obs.observe(torch.tensor([-6.0, 8.0]))
    assert float(obs.r_min) == pytest.approx(-2.0 + 0.25 * (-6.0 + 2.0))
    assert float(obs.r_max) == pytest.approx(4.0 + 0.25 * (8.0 - 4.0))


def test_percentile_clips_a_rare_outlier():
    x = torch.linspace(-1, 1, 10_001)
    x[5000] = 1000.0  # one outlier in 10 001 values
    obs = PercentileObserver(percentile=99.9)
    obs.observe(x)
    assert float(obs.r_max) < 1.0 and float(obs.r_min) > -1.0 and float(obs.r_max) > 0.99
    minmax = MinMaxObserver()
    minmax.observe(x)
    assert float(obs.qparams()[0]) < float(minmax.qparams()[0]) / 100  # a 500x finer step
    obs.observe(torch.linspace(-3, 3, 10_001))  # the running mean over batches
    assert float(obs.r_max) == pytest.approx((0.9996 + 2.994) / 2, abs=0.01)


def test_observer_errors_and_factory():
    with pytest.raises(ValueError, match="no data observed"):
        MinMaxObserver().qparams()
    with pytest.raises(ValueError, match="NaN"):
        MinMaxObserver().observe(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="floating"):
        MinMaxObserver().observe(torch.tensor([1, 2]))
    empty = MinMaxObserver()
    empty.observe(torch.zeros(0, 4))
    assert empty.batches == 0
    assert isinstance(make_observer(W8A8StaticConfig(observer="percentile")), PercentileObserver)
    assert make_observer(W8A8StaticConfig(observer="moving_average", averaging_constant=0.5)).c == 0.5
