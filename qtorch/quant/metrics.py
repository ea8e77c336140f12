"""Quantization error measures."""
import math

import torch

from qtorch.quant._validate import check_tensor


def _pair(x, x_hat):
    check_tensor("x", x)
    check_tensor("x_hat", x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat: expected shape {tuple(x.shape)} like x, got {tuple(x_hat.shape)}")
    return x.double(), x_hat.to(x.device).double()


def reconstruction_error(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Frobenius norm ‖x − x̂‖_F (for a weight: ‖W − S⊙(q − Z)‖)."""
    x, x_hat = _pair(x, x_hat)
    return float(torch.linalg.vector_norm(x - x_hat))


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio 10·log10(‖x‖² / ‖x − x̂‖²) in dB (inf when x̂ == x)."""
    x, x_hat = _pair(x, x_hat)
    noise = float(torch.sum((x - x_hat) ** 2))
    signal = float(torch.sum(x**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def relative_error(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """‖x − x̂‖ / ‖x‖."""
    x, x_hat = _pair(x, x_hat)
    denom = float(torch.linalg.vector_norm(x))
    return float(torch.linalg.vector_norm(x - x_hat)) / denom if denom else math.inf
