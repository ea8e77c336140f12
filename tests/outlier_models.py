"""Small models and calibration data with injected activation outliers, shared by the SmoothQuant and AWQ tests."""
import copy

import torch
import torch.nn as nn

import qtorch
from qtorch.config import W8A8StaticConfig


class TwoBranch(nn.Module):
    """x -> (a(x), b(x)) -> c(a(x)) + b(x): a and b share their input; c reads a's output channel for channel."""

    def __init__(self, k: int = 256, n: int = 128, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.a, self.b, self.c = nn.Linear(k, k), nn.Linear(k, n), nn.Linear(k, n)
        for lin in (self.a, self.b, self.c):
            lin.weight.data = torch.randn(lin.weight.shape, generator=gen) / lin.in_features ** 0.5
            lin.bias.data = 0.1 * torch.randn(lin.bias.shape, generator=gen)

    def forward(self, x):
        return self.c(self.a(x)) + self.b(x)


def outlier_inputs(batches: int, rows: int, k: int, seed: int, outliers: int = 4, size: float = 40.0):
    """[(rows, k) fp32] with `outliers` fixed channels about `size` times larger than the rest (as in LLM / BERT
    activations), drawn from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    channels = torch.randperm(k, generator=torch.Generator().manual_seed(1234))[:outliers]
    gain = torch.ones(k)
    gain[channels] = size
    return [torch.randn(rows, k, generator=gen) * gain for _ in range(batches)]


def relative_error(reference: torch.Tensor, out: torch.Tensor) -> float:
    return float((reference - out).detach().norm() / reference.detach().norm())


def errors_without_and_with(prepare, config, calib, x) -> tuple[float, float]:
    """Relative output error of TwoBranch quantized by `config` (calibrated when static), plain and after
    prepare(model, calib, config) (SmoothQuant / AWQ)."""
    model = TwoBranch()
    ref = model(x)
    plain, prepared = copy.deepcopy(model), copy.deepcopy(model)
    prepare(prepared, calib, config)
    for m in (plain, prepared):
        qtorch.quantize_(m, config)
        if isinstance(config, W8A8StaticConfig):
            qtorch.calibrate(m, calib, progress=False)
    return relative_error(ref, plain(x)), relative_error(ref, prepared(x))
