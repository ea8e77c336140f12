"""Gradients w.r.t. the input through every scheme (weights frozen), against the dequantized float layer in float64,
eager and compiled (one graph); and LoRA adapters fine-tuned on a 4-bit base with MixedPrecision."""
import copy

import pytest
import torch
import torch.nn as nn

import qtorch
import qtorch.amp
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)
from qtorch.nn import QuantLinear

CONFIGS = [W8A8DynamicConfig(), W8A8StaticConfig(), W8A8StaticConfig(output="int8"), Int8WeightOnlyConfig(),
           GroupWeightOnlyConfig(bits=4, group_size=32), GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False),
           GroupWeightOnlyConfig(bits=8, group_size=32), CodebookConfig(bits=4)]


def _layer(config, k=64, n=24, device="cpu"):
    layer = QuantLinear.from_float(nn.Linear(k, n), config).to(device)
    if isinstance(config, W8A8StaticConfig):
        model = nn.Sequential(layer)
        qtorch.calibrate(model, [torch.randn(16, k, device=device)], progress=False)
    return layer


def _check_input_grad(layer, x, compiled=False):
    x = x.detach().requires_grad_(True)
    fn = torch.compile(layer, fullgraph=True, backend="aot_eager") if compiled else layer
    y = fn(x)
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    expected = grad_y.double() @ layer.dequantize_weight(torch.float64)  # dL/dx = dL/dy · Ŵ, in float64
    tol = 2e-5 if x.dtype == torch.float32 else 3e-2
    torch.testing.assert_close(x.grad.double(), expected, atol=tol * expected.abs().max().item(), rtol=tol)
    assert all(t.grad is None for t in layer.buffers())  # the quantized weight gets no gradient


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
@pytest.mark.parametrize("m", [1, 5])
def test_input_grad_matches_dequantized_layer(config, m):
    layer = _layer(config)
    _check_input_grad(layer, torch.randn(m, 64))
    _check_input_grad(layer, torch.randn(2, m, 64))  # leading dims flattened and restored


@pytest.mark.parametrize("config", [W8A8DynamicConfig(), GroupWeightOnlyConfig(bits=4, group_size=32), CodebookConfig(bits=4)],
                         ids=repr)
def test_input_grad_compiled_fullgraph(config):
    _check_input_grad(_layer(config), torch.randn(3, 64), compiled=True)


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), CodebookConfig(bits=4)], ids=repr)
def test_bias_grad_when_bias_requires_grad(config):
    layer = _layer(config)
    layer.bias.requires_grad_(True)
    y = layer(torch.randn(4, 64))
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    torch.testing.assert_close(layer.bias.grad, grad_y.sum(0))


@pytest.mark.cuda
@pytest.mark.parametrize("config", CONFIGS, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_input_grad_cuda(config, dtype):
    layer = _layer(config, k=256, n=96, device="cuda")
    _check_input_grad(layer, torch.randn(17, 256, device="cuda", dtype=dtype))
    _check_input_grad(layer, torch.randn(3, 256, device="cuda", dtype=dtype), compiled=True)


class LoRALinear(nn.Module):
    """y = base(x) + (x Aᵀ) Bᵀ · alpha / r, base frozen (Hu et al. 2021, on a quantized base as in QLoRA)."""

    def __init__(self, base, r=4, alpha=8.0):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        self.lora_a = nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.t()) @ self.lora_b.t() * self.scaling


def _finetune(model, x, target, steps=40):
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in adapters:
        p.requires_grad_(True)
    opt = torch.optim.Adam(adapters, lr=3e-2)
    mp = qtorch.amp.MixedPrecision(model, opt, dtype=torch.bfloat16)
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x).float(), target)  # x fp32: cast to bf16 at the model boundary
        mp.backward(loss)
        mp.step()
        losses.append(loss.item())
    return losses


def test_lora_on_4bit_base_trains_like_float_base():
    torch.manual_seed(0)
    float_model = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 32))
    teacher = copy.deepcopy(float_model)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(64, 64)
    target = teacher(x).detach()
    quantized = copy.deepcopy(float_model)
    qtorch.quantize_(quantized, GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False))
    runs = {}
    for name, base in (("float", float_model), ("4-bit", quantized)):
        model = nn.Sequential(LoRALinear(base[0]), nn.GELU(), LoRALinear(base[2]))
        torch.manual_seed(1)
        for m in model:
            if isinstance(m, LoRALinear):
                nn.init.normal_(m.lora_a, std=0.1)
        runs[name] = _finetune(model, x, target)
    for name, losses in runs.items():
        assert losses[-1] < 0.5 * losses[0], (name, losses[0], losses[-1])
    # the 4-bit base adds its quantization error to the loss; the reduction matches the float base's within 0.15
    reduction = {name: 1 - losses[-1] / losses[0] for name, losses in runs.items()}
    assert abs(reduction["4-bit"] - reduction["float"]) < 0.15, reduction
