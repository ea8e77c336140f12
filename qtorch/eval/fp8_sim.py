"""FP8 row-wise linears simulated in PyTorch (any device, the CPU included): the accuracy of an e4m3 W8A8
alternative (torch._scaled_mm row-wise, torchao's Float8DynamicActivationFloat8WeightConfig(PerRow)) beside int8.

  y = x̂ ŵᵀ + b,  x̂ = fake_quantize_e4m3_rowwise(x) per token,  ŵ = float(q_W) · S_W per output channel
(qtorch.quant.fp8). The weight is stored as e4m3 (8 bits per weight) with an fp32 scale per output channel.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from qtorch.quant.fp8 import fake_quantize_e4m3_rowwise, quantize_e4m3_rowwise


class Fp8SimLinear(nn.Linear):
    """nn.Linear whose weight is e4m3 per output channel (w_scale (N, 1) fp32) and whose input is fake-quantized to
    e4m3 per token; computes in the input's float dtype."""

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Fp8SimLinear":
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        q, scale = quantize_e4m3_rowwise(linear.weight.detach())  # (N, K) e4m3, (N, 1) fp32
        layer.weight = nn.Parameter(q, requires_grad=False)
        layer.register_buffer("w_scale", scale)
        layer.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight.float() * self.w_scale).to(x.dtype)  # (N, K) ŵ
        return F.linear(fake_quantize_e4m3_rowwise(x), w, self.bias)


def simulate_fp8_rowwise_(model: nn.Module) -> int:
    """Replace every nn.Linear of model by an Fp8SimLinear in place; returns how many."""
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is nn.Linear]
    for parent, name, child in swaps:
        setattr(parent, name, Fp8SimLinear.from_linear(child))
    return len(swaps)
