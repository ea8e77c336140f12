"""Errors that used to come from deep inside other libraries, and user-facing text (issue 13, item 6)."""
import pathlib
import re

import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig

REPO = pathlib.Path(__file__).resolve().parents[1]


def _quantized():
    model = nn.Sequential(nn.Linear(64, 32))
    qtorch.quantize_(model, Int8WeightOnlyConfig())
    return model


def test_save_quantized_creates_a_missing_folder(tmp_path):
    model = _quantized()
    path = tmp_path / "new" / "deeper" / "model.safetensors"
    qtorch.save_quantized(model, path)
    fresh = nn.Sequential(nn.Linear(64, 32))
    qtorch.quantize_(fresh, qtorch.load_config(path))
    qtorch.load_quantized(fresh, path)
    x = torch.randn(2, 64)
    assert torch.equal(fresh(x), model(x))


def test_save_quantized_where_a_folder_cannot_be_made_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=r"path: cannot create the folder .*file"):
        qtorch.save_quantized(_quantized(), blocker / "model.safetensors")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_load_onto_cuda_without_cuda_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    model = _quantized()
    qtorch.save_quantized(model, path)
    with pytest.raises(RuntimeError, match=r"device: cuda requested but CUDA is not available.*device='cpu'"):
        qtorch.load_quantized(model, path, device="cuda")


def test_plot_into_a_missing_folder_is_one_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from qtorch.analysis.cli import main

    code = main(["llama2-7b", "--batch", "1", "--seq", "128", "--plot", str(tmp_path / "missing" / "out.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--plot" in err and "does not exist" in err


def test_infeasible_budget_names_the_layer_that_forces_it():
    # g32 fits layers 0 and 2 (K = 64) at 5.25 bits; layer 1 (K = 48) can only take int8 (8.625 bits)
    model = nn.Sequential(nn.Linear(64, 48), nn.Linear(48, 64), nn.Linear(64, 64))
    x = torch.randn(4, 64)
    with pytest.raises(ValueError, match=r"least achievable .* Layers above the budget: 1 \(in_features=48: at least "
                                         r"[\d.]+ bits/weight; cannot take GroupWeightOnlyConfig\(bits=4, group_size=32.*skip=\['1'\]"):
        qtorch.plan_bits(model, x, 5.5, candidates=(GroupWeightOnlyConfig(4, 32), Int8WeightOnlyConfig()),
                         progress=False)
    with pytest.raises(ValueError, match="Every layer needs at least that much"):
        qtorch.plan_bits(nn.Sequential(nn.Linear(64, 64)), x, 5.0, candidates=(GroupWeightOnlyConfig(4, 32),),
                         progress=False)


def test_no_course_wording_in_user_facing_text():
    """Name the formula or the paper, never "the course" (qtorch.analysis has its own check)."""
    files = [REPO / "README.md", REPO / "qtorch" / "config.py", *sorted((REPO / "qtorch").glob("api/*.py")),
             *sorted((REPO / "qtorch").glob("cli/*.py")), *sorted((REPO / "qtorch").glob("quant/*.py")),
             *sorted((REPO / "qtorch").glob("eval/*.py")), *sorted((REPO / "qtorch").glob("algorithms/*.py"))]
    offending = [f"{f.relative_to(REPO)}:{i}" for f in files
                 for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\bcourse\b", line, re.I)]
    assert offending == []
