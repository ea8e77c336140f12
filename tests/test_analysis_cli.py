"""python -m qtorch.analysis: tables, figure, config files, errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qtorch.analysis.cli import main


def test_course_numbers_on_the_command_line(capsys):
    assert main(["llama2-7b", "--batch", "1", "--seq", "4096", "--conventions", "course", "--train"]) == 0
    out = capsys.readouterr().out
    assert "6,738,415,616" in out and "62.97 T" in out and "188.92 T" in out
    assert "predicted peak" in out and "optimizer_states" in out


def test_training_with_zero3_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "breakdown.png"
    argv = ["llama2-7b", "--batch", "1", "--seq", "4096", "--train", "--recipe", "amp-fp16", "--gpus", "8",
            "--zero", "3", "--checkpointing", "layer", "--step-time", "0.5", "--plot", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ZeRO-3 over 8 GPU(s)" in out and "MFU at 0.5 s/step" in out and "layer-boundary checkpoints" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inference_from_a_config_file(tmp_path, capsys):
    config = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
              "max_position_embeddings": 8192}
    path = tmp_path / "mymodel" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    assert main([str(path), "--seq", "512", "--weight-format", "int4-g128", "--kv-cache", "8192"]) == 0
    out = capsys.readouterr().out
    assert "mymodel" in out and "kv cache" in out and "n_kv=8" in out


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["gpt3-small", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err


def test_errors_are_reported_not_raised(capsys):
    assert main(["llama9"]) == 2
    assert "valid presets: llama2-7b" in capsys.readouterr().err
    assert main(["missing/config.json"]) == 2
    assert "no such config file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["llama2-7b", "--batch", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "qtorch.analysis", "gpt3-175b", "--batch", "1", "--seq", "2048",
                          "--train", "--recipe", "amp-fp16", "--params", "175e9"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]).stdout
    assert "350.00 GB" in out and "700.00 GB" in out and "1,400.00 GB" in out
