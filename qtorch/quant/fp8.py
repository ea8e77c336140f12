"""Row-wise FP8 (e4m3) quantization, the scheme FP8 linears use on Hopper (torch._scaled_mm with row-wise scales,
torchao's Float8DynamicActivationFloat8WeightConfig with PerRow granularity):

  S[r] = max_k |x[r, k]| / 448 in fp32 (448 = largest finite e4m3; S = 1 for an all-zero row)
  q[r, k] = e4m3(clamp(x[r, k] / S[r], −448, 448))      (IEEE division, cast rounds to nearest even)
  x̂[r, k] = float(q[r, k]) · S[r]
Rows are tokens for activations and output channels for weights (x (M, K), w (N, K): rows along K).
"""
import torch

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max


def quantize_e4m3_rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (R, K) float -> (q (R, K) float8_e4m3fn, scale (R, 1) fp32)."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True) / E4M3_MAX  # (R, 1)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return (xf / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def fake_quantize_e4m3_rowwise(x: torch.Tensor) -> torch.Tensor:
    """x̂ = float(q) · S (rows of x, same shape and dtype as x): what an FP8 row-wise linear computes with."""
    q, scale = quantize_e4m3_rowwise(x.reshape(-1, x.shape[-1]))
    return (q.float() * scale).reshape(x.shape).to(x.dtype)
