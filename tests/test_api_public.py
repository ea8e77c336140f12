"""GPTQ from `qtorch`, the README's GPTQ example, and the 4-bit default (issue 13, item 6)."""
import pathlib
import re

import torch
import torch.nn as nn

import qtorch
from qtorch.config import GroupWeightOnlyConfig, PerLayerConfig, config_from_dict
from qtorch.nn import QuantLinear

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_gptq_is_reachable_from_qtorch():
    from qtorch.algorithms import quantize_gptq_

    assert "quantize_gptq_" in qtorch.__all__ and qtorch.quantize_gptq_ is quantize_gptq_


def test_the_readme_gptq_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "quantize_gptq_" in b)
    example = example.replace("range(4)", "range(2)")  # two calibration batches are enough to run it
    scope = {}
    exec(compile(example, "README.md", "exec"), scope)  # noqa: S102
    model = scope["model"]
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert layers and not any(type(m) is nn.Linear for m in model.modules())
    assert all(m.config == GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False) for m in layers)
    assert "layers converted" in capsys.readouterr().out


def test_4bit_default_is_asymmetric_8bit_symmetric():
    assert GroupWeightOnlyConfig().symmetric is False
    assert GroupWeightOnlyConfig(bits=4, group_size=32).symmetric is False
    assert GroupWeightOnlyConfig(bits=8).symmetric is True
    assert GroupWeightOnlyConfig() == GroupWeightOnlyConfig(4, 128, False)
    assert GroupWeightOnlyConfig().to_dict()["symmetric"] is False  # checkpoints record the resolved value
    # a config recorded before the change (symmetric=True written out) still means symmetric
    old = config_from_dict({"scheme": "group_weight_only", "bits": 4, "group_size": 128, "symmetric": True,
                            "clip_search": False})
    assert old.symmetric is True
    assert PerLayerConfig.from_dict({"layers": {"0": old.to_dict()}}).config_for("0") == old


def test_4bit_default_keeps_a_zero_point_per_group():
    torch.manual_seed(0)
    linear = nn.Linear(64, 16)
    with torch.no_grad():
        linear.weight.add_(0.05)  # a shifted range: where a zero point helps
    layer = QuantLinear.from_float(linear, GroupWeightOnlyConfig(group_size=32))
    w_hat = layer.dequantize_weight()
    sym = QuantLinear.from_float(linear, GroupWeightOnlyConfig(group_size=32, symmetric=True)).dequantize_weight()
    assert torch.linalg.norm(linear.weight - w_hat) < torch.linalg.norm(linear.weight - sym)
