"""MixedPrecision casts floating inputs to the compute dtype at the model boundary (FSDP2's cast_forward_inputs)."""
import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.amp import MixedPrecision
from qtorch.config import GroupWeightOnlyConfig


class Keyworded(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(64, 4)

    def forward(self, x, *, extra, ids):
        return self.proj(x + extra["shift"]) + ids.float().sum() * 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp32_input_docstring_loop(dtype):
    model = nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mp = MixedPrecision(model, opt, dtype=dtype)
    out = model(torch.randn(4, 64))  # fp32 batch: used to fail with "mat1 and mat2 must have the same dtype"
    assert out.dtype == dtype
    mp.backward(nn.functional.mse_loss(out.float(), torch.randn(4, 4)))
    assert mp.step()


def test_keyword_and_nested_inputs_cast_integers_untouched():
    model = Keyworded()
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.bfloat16)
    ids = torch.arange(3)
    out = model(torch.randn(2, 64), extra={"shift": torch.randn(64)}, ids=ids)
    assert out.dtype == torch.bfloat16 and ids.dtype == torch.int64
    assert mp.updates == 0


def test_quantized_model_with_fp32_inputs():
    model = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 8))
    qtorch.quantize_(model, GroupWeightOnlyConfig(bits=4, group_size=32), skip=("2",))
    MixedPrecision(model, torch.optim.SGD(model[2].parameters(), lr=0.1), dtype=torch.bfloat16)
    assert model[0].weight.dtype == torch.bfloat16
    assert model(torch.randn(4, 64)).dtype == torch.bfloat16
