"""FP8 row-wise linear through torch._scaled_mm (Hopper): the naive FP8 baseline of the W8A8 benchmarks.

  y = (q_X S_X) (q_W S_W)ᵀ + b,  q_X, S_X = quantize_e4m3_rowwise(x) per token, q_W, S_W per output channel
(qtorch.quant.fp8 holds the formula). The activation cast is plain PyTorch, so torch.compile fuses it into one kernel
before the GEMM; eager mode runs it as several kernels.
"""
import torch
import torch.nn as nn

from qtorch.quant.fp8 import quantize_e4m3_rowwise

ALIGN = 16  # torch._scaled_mm needs K and N multiples of 16


def fp8_rowwise_linear(x, w_q, w_scale, bias=None):
    """x (M, K) bf16; w_q (N, K) float8_e4m3fn; w_scale (1, N) fp32; bias (N,) bf16 or None -> y (M, N) x.dtype."""
    x_q, x_scale = quantize_e4m3_rowwise(x)  # (M, K) e4m3, (M, 1) fp32
    return torch._scaled_mm(x_q, w_q.t(), scale_a=x_scale, scale_b=w_scale, bias=bias, out_dtype=x.dtype)


class Fp8RowwiseLinear(nn.Module):
    """An nn.Linear with e4m3 weights per output channel and per-token e4m3 activations (fp8_rowwise_linear)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w_q, w_scale = quantize_e4m3_rowwise(linear.weight.detach())
        self.register_buffer("w_q", w_q)  # (N, K) e4m3
        self.register_buffer("w_scale", w_scale.reshape(1, -1).contiguous())  # (1, N) fp32
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        y = fp8_rowwise_linear(x.reshape(-1, self.in_features), self.w_q, self.w_scale, self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)


def fp8_rowwise_supported(linear: nn.Linear) -> bool:
    return linear.in_features % ALIGN == 0 and linear.out_features % ALIGN == 0


def quantize_fp8_rowwise_(model: nn.Module) -> int:
    """Replace every nn.Linear of model whose shape torch._scaled_mm takes by an Fp8RowwiseLinear; returns how many."""
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is nn.Linear and fp8_rowwise_supported(child)]
    for parent, name, child in swaps:
        setattr(parent, name, Fp8RowwiseLinear(child))
    return len(swaps)
