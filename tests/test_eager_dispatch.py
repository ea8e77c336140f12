"""Eager per-call work (issue 13, eager speed; issue 15, one registry): every public op's body is its CPU and CUDA
kernel (no torch.library wrapper per call), non-differentiable ops skip the autograd layer, weight-only layers fix
their WeightLayout when built, scheme names come from one registry, and nothing under qtorch/ imports torchao."""
import pathlib
import re

import pytest
import torch
import torch.nn as nn

import qtorch
import qtorch.ops as qops
from qtorch.analysis import WEIGHT_FORMATS
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig
from qtorch.eval.schemes import SCHEMES, SPEED_SCHEMES
from qtorch.nn import QuantLinear
from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED, WeightLayout

PUBLIC_OPS = ("quantize_per_token", "quantize_per_tensor", "int8_scaled_mm", "int8_linear_requant", "group_quantize",
              "group_dequantize", "weight_only_linear", "codebook_linear")
DIFFERENTIABLE = ("weight_only_linear", "codebook_linear")


@pytest.mark.parametrize("name", PUBLIC_OPS)
def test_op_bodies_are_the_device_kernels(name):
    qualified = f"qtorch::{name}"
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualified, key)
        if name in DIFFERENTIABLE:  # custom_op's autograd kernel (register_autograd) stays
            assert torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "Autograd")
        else:
            assert torch._C._dispatch_kernel_for_dispatch_key_is_fallthrough(qualified, "Autograd" + key)
    assert isinstance(getattr(qops, name), torch._ops.OpOverload)


def test_non_differentiable_op_output_needs_no_grad_and_linear_ops_keep_their_backward():
    x = torch.randn(3, 64, requires_grad=True)
    q, scale, zp = qops.quantize_per_token(x.detach())
    assert not scale.requires_grad
    layer = QuantLinear.from_float(nn.Linear(64, 8), GroupWeightOnlyConfig(bits=4, group_size=32))
    layer(x).sum().backward()
    w = layer.dequantize_weight()
    torch.testing.assert_close(x.grad, torch.ones(3, 8) @ w)


def test_eager_kernel_matches_the_reference():
    x = torch.randn(5, 64)
    layer = QuantLinear.from_float(nn.Linear(64, 24), W8A8DynamicConfig())
    from qtorch.ops.activation import quantize_per_token_reference
    from qtorch.ops.int8_matmul import int8_scaled_mm_reference

    x_q, x_scale, x_zp = quantize_per_token_reference(x)
    ref = int8_scaled_mm_reference(x_q, x_scale, x_zp, layer.w_q, layer.w_scale, layer.w_colsum, None, layer.bias,
                                   x.dtype)
    assert torch.equal(layer(x), ref)


@pytest.mark.parametrize("config, k, expected", [
    (GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False), 256, WeightLayout(4, 128, False, LAYOUT_TILED)),
    (GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=True), 96, WeightLayout(4, 32, True, LAYOUT_ROWMAJOR)),
    (Int8WeightOnlyConfig(), 96, WeightLayout(8, 96, True, LAYOUT_TILED)),
    (Int8WeightOnlyConfig(), 40, WeightLayout(8, 40, True, LAYOUT_ROWMAJOR)),
])
def test_weight_layout_is_fixed_at_conversion(config, k, expected):
    layer = QuantLinear.from_float(nn.Linear(k, 8), config)
    assert layer.weight_layout == expected
    assert (layer.bits, layer.group_size, layer.layout) == (expected.bits, expected.group_size, expected.layout)
    assert int(layer.w_layout) == expected.layout


def test_scheme_names_come_from_one_registry():
    from qtorch.cli import bench, demo

    assert set(SPEED_SCHEMES) <= set(SCHEMES) and bench.SCHEMES == SPEED_SCHEMES
    assert set(demo.LLAMA_SCHEMES) <= set(SCHEMES) and set(demo.MINILM_SCHEMES) <= set(SCHEMES)
    formats = {name: s.weight_format for name, s in SCHEMES.items()}
    assert formats["w4a16"] == "int4-g128" and formats["w8a16"] == "int8-weight-only" and formats["w8a8"] == "w8a8"
    assert formats["w8a8-static"] is None and formats["mixed5"] is None
    assert all(f in WEIGHT_FORMATS for f in formats.values() if f is not None)
    for name in SPEED_SCHEMES:  # the speed harness quantizes with the registry's config
        model = nn.Sequential(nn.Linear(256, 16))
        from qtorch.eval.speed import quantize_impl

        quantize_impl(model, f"qtorch_{name}")
        assert model[0].config == SCHEMES[name].config


def test_nothing_under_qtorch_imports_torchao():
    root = pathlib.Path(qtorch.__file__).parent
    pattern = re.compile(r"^\s*(import torchao|from torchao)", re.MULTILINE)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
