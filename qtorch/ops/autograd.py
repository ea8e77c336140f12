"""Backward of the quantized linear layers, the weights frozen: gradients w.r.t. the input (and the float bias).

weight_only_linear, codebook_linear (registered on the qtorch:: ops, so torch.compile keeps one graph):
    y = x Ŵᵀ + b   ->   dL/dx = dL/dy · Ŵ,   dL/db = Σ_m dL/dy[m]
    Ŵ rebuilt by what defines it (qtorch::group_dequantize, codebook_weight), in dL/dy's dtype; the packed weight,
    scales, zero points and codebooks get no gradient.
W8A8 layers (quantize_per_token + int8_scaled_mm, or a static layer's fixed-scale rounding): rounding x to int8 has
zero gradient almost everywhere, so the layer uses the straight-through estimate dL/dx = dL/dy · Ŵ with Ŵ = S_W q_W
(`straight_through`), the standard choice when only the input gradient through a frozen quantized layer is needed,
as when fine-tuning adapters on a quantized base (QLoRA, Dettmers et al. 2023; LLM.int8(), Dettmers et al. 2022).
"""
import torch

from qtorch.ops.codebook import codebook_weight
from qtorch.ops.group import dequantize_dtype


def _bias_grad(ctx, grad_y: torch.Tensor, bias_index: int):
    return grad_y.sum(dim=0).to(ctx.bias_dtype) if ctx.needs_input_grad[bias_index] else None


def _setup_weight_only(ctx, inputs, output):
    x, w_q, w_scale, w_zp, bits, group_size, bias, layout = inputs
    ctx.save_for_backward(w_q, w_scale, w_zp)
    ctx.bits, ctx.group_size, ctx.layout = bits, group_size, layout
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward_weight_only(ctx, grad_y):
    w_q, w_scale, w_zp = ctx.saved_tensors
    grad_x = None
    if ctx.needs_input_grad[0]:
        w = torch.ops.qtorch.group_dequantize(w_q, w_scale, w_zp, ctx.bits, ctx.group_size,
                                              dequantize_dtype(grad_y.dtype), ctx.layout)  # (N, K)
        grad_x = grad_y @ w.to(grad_y.dtype)  # (M, K)
    return grad_x, None, None, None, None, None, _bias_grad(ctx, grad_y, 6), None


def _setup_codebook(ctx, inputs, output):
    x, indices, codebook, bits, group_size, bias = inputs
    ctx.save_for_backward(indices, codebook)
    ctx.bits, ctx.group_size = bits, group_size
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward_codebook(ctx, grad_y):
    indices, codebook = ctx.saved_tensors
    grad_x = None
    if ctx.needs_input_grad[0]:
        w = codebook_weight(indices, codebook, ctx.bits, ctx.group_size).to(grad_y.dtype)  # (N, K)
        grad_x = grad_y @ w  # (M, K)
    return grad_x, None, None, None, None, _bias_grad(ctx, grad_y, 5)


torch.library.register_autograd("qtorch::weight_only_linear", _backward_weight_only, setup_context=_setup_weight_only)
torch.library.register_autograd("qtorch::codebook_linear", _backward_codebook, setup_context=_setup_codebook)


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized layer's output y. Backward: dL/dx = dL/dy · S_W q_W (per-channel int8 weight)."""

    @staticmethod
    def forward(x, y, w_q, w_scale):
        return y.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[2], inputs[3])

    @staticmethod
    def backward(ctx, grad_y):
        w_q, w_scale = ctx.saved_tensors  # (N, K) int8, (N,) fp32
        n, k = w_q.shape
        zero = torch.zeros(n, 1, dtype=torch.int8, device=w_q.device)  # Z_W = 0: per channel is one group of K
        w = torch.ops.qtorch.group_dequantize(w_q, w_scale[:, None], zero, 8, k, dequantize_dtype(grad_y.dtype))  # (N, K)
        return grad_y @ w.to(grad_y.dtype), None, None, None


def straight_through(x: torch.Tensor, y: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """y (M, N), computed from x (M, K) by an int8 layer, with the straight-through gradient dL/dx = dL/dy · S_W q_W
    when x requires grad (y as is otherwise)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _StraightThrough.apply(x, y, w_q, w_scale)
    return y
