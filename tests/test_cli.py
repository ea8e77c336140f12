"""`python -m qtorch`: the demo runs and prints its tables; bad input is one line on stderr and a non-zero exit."""
import os
import subprocess
import sys

import pytest
import torch

from qtorch.cli.bench import speed_table
from qtorch.cli.main import main
from qtorch.eval.speed import Measurement, implementations, project_depth
from qtorch_baselines.speed import speed_baselines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qtorch: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize("argv, fragments", [
    ((), ("required",)),
    (("frobnicate",), ("invalid choice", "frobnicate")),
    (("demo", "--model", "gpt9"), ("--model", "gpt9")),
    (("demo", "--schemes", "w8a8,w3a3"), ("w3a3", "valid")),
    (("demo", "--llama-preset", "llama2-7b-shaped"), ("--llama-preset",)),
    (("bench", "--model", "nope"), ("--model", "nope")),
    (("bench", "--scheme", "w4a4"), ("w4a4", "w8a8, w4a16, w8a16")),
    (("bench", "--decode-batches", "1,x"), ("--decode-batches",)),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, fragments):
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("argv", [("demo", "--device", "cuda"), ("bench",), ("bench", "--device", "cpu")])
def test_no_gpu_exits_1_with_one_line(capsys, argv):
    code, _, err = run_main(capsys, *argv)
    assert code == 1
    assert_one_line_error(err, "GPU")


def test_missing_minilm_package_says_what_to_install(capsys, monkeypatch):
    import qtorch.models.minilm as minilm

    monkeypatch.setattr(minilm, "minilm_available", lambda: False)
    code, _, err = run_main(capsys, "demo", "--model", "minilm", "--device", "cpu")
    assert code == 1
    assert_one_line_error(err, "pip install", "models")


def test_demo_without_minilm_runs_llama_and_says_how_to_add_it(capsys, monkeypatch):
    import qtorch.models.minilm as minilm

    monkeypatch.setattr(minilm, "minilm_available", lambda: False)
    code, out, _ = run_main(capsys, "demo", "--device", "cpu", "--llama-preset", "tiny", "--schemes", "w8a8,w4a16",
                            "--no-progress")
    assert code == 0
    assert "MiniLM skipped" in out and "pip install" in out


def test_demo_llama_table(capsys):
    code, out, _ = run_main(capsys, "demo", "--device", "cpu", "--model", "llama", "--llama-preset", "tiny",
                            "--schemes", "w8a8,w8a16,w4a16,w4a16-gptq", "--no-progress")
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scheme "))
    for column in ("bits/weight", "weight bytes", "logits SQNR dB", "quantize s"):
        assert column in lines[start]
    assert "latency ms" not in lines[start]  # measured on a GPU only
    body = lines[start + 2:]
    body = body[:next(i for i, line in enumerate(body) if line.startswith("  "))]  # up to the legend
    rows = {line.split()[0]: line.split() for line in body}
    assert set(rows) == {"float", "w8a8", "w8a16", "w4a16", "w4a16-gptq"}
    assert float(rows["float"][1]) == 32.0
    assert 8.0 < float(rows["w8a8"][1]) < 8.6 and 4.0 < float(rows["w4a16"][1]) < 4.6
    assert float(rows["w8a16"][4]) > float(rows["w4a16"][4]) > 0  # SQNR: 8-bit weights beat 4-bit
    assert "Analysis (qtorch.analysis)" in out


def test_python_m_qtorch_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "qtorch", "demo", "--model", "gpt9"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("qtorch: error: argument --model")


def test_project_depth():
    # 4 blocks timed at 10 ms with 2 ms outside the blocks -> 32 blocks: 2 + 8 * 8 = 66 ms
    assert project_depth(10_000.0, 2_000.0, 4, 32) == pytest.approx(66_000.0)
    assert project_depth(10_000.0, 2_000.0, 32, 32) == pytest.approx(10_000.0)
    with pytest.raises(ValueError, match="slice_us: the forward with 2 blocks"):  # a failed measurement, not a number
        project_depth(3_000.0, 7_000.0, 2, 32)


def test_implementations_and_speed_table():
    assert implementations(("w8a8", "w4a16"), speed_baselines(("w8a8", "w4a16"), with_torchao=True)) == [
        "bf16", "qtorch_w8a8", "torchao_int8dq", "fp8_rowwise", "torchao_fp8_rowwise", "qtorch_w4a16",
        "torchao_int4wo_g128"]
    assert implementations(("w8a16",), speed_baselines(("w8a16",), with_torchao=False)) == ["bf16", "qtorch_w8a16"]
    assert implementations(("w8a8",), speed_baselines(("w8a8",), with_torchao=False)) == [
        "bf16", "qtorch_w8a8", "fp8_rowwise"]
    ms = [Measurement("bf16", "prefill", 1, 2048, 0, 0, 40_000.0, 0.0),
          Measurement("bf16", "decode", 1, 1, 0, 0, 4_000.0, 0.0),
          Measurement("qtorch_w4a16", "prefill", 1, 2048, 0, 0, 50_000.0, 0.0),
          Measurement("qtorch_w4a16", "decode", 1, 1, 0, 0, 1_000.0, 0.0)]
    table = speed_table(ms)
    assert "prefill b1 tok/s" in table and "decode b1 tok/s" in table
    assert "1,000 (4.00x)" in table and "51,200" in table and "40,960 (0.80x)" in table


def test_measure_impl_logic_on_cpu(monkeypatch):
    """The speed harness end to end on the CPU, with CPU stand-ins for the CUDA timer and graph capture."""
    import time as _time

    from qtorch.eval import speed

    def cpu_median_us(fn, iters, repeats=1, warmup=0):
        t0 = _time.perf_counter()
        for _ in range(iters):
            fn()
        return (_time.perf_counter() - t0) * 1e6 / iters

    monkeypatch.setattr(speed, "cuda_median_us", cpu_median_us)
    monkeypatch.setattr(speed, "graphed", lambda fn: fn)
    for impl in ("bf16", "qtorch_w4a16"):
        ms = speed.measure_impl(impl, "tiny", 1, torch.device("cpu"), prefill_len=32, decode_batches=(1, 2),
                                decode_pos=3, decode_cache=16, compile_model=False)
        assert [(m.phase, m.batch, m.tokens) for m in ms] == [("prefill", 1, 32), ("decode", 1, 1), ("decode", 2, 2)]
        depth = speed.get_config("tiny").n_layers
        for m in ms:
            assert m.fixed_us > 0 and m.tokens_per_s > 0
            assert m.full_us == pytest.approx(speed.project_depth(m.slice_us, m.fixed_us, 1, depth))


def test_measure_impl_refuses_an_uncaptured_fixed_part_under_compile(monkeypatch):
    """Compiled slice minus an eagerly timed block-less forward is no projection: an error, not a negative number."""
    from qtorch.eval import speed

    monkeypatch.setattr(speed, "time_forward", lambda *args, **kwargs: (5_000.0, 1.0))  # no torch.compile here
    monkeypatch.setattr(speed, "time_fixed", lambda *args, **kwargs: (1_000.0, False))  # capture failed: eager time
    with pytest.raises(RuntimeError, match="bf16: the forward without blocks could not be captured"):
        speed.measure_impl("bf16", "tiny", 1, torch.device("cpu"), prefill_len=8, decode_batches=(1,), decode_pos=3,
                           decode_cache=16, compile_model=True)


def test_kv_cache_on_a_model_with_a_quantized_head():
    import qtorch
    from qtorch.models import build_llama

    model = build_llama("tiny")
    qtorch.quantize_(model, qtorch.GroupWeightOnlyConfig(bits=4, group_size=128))
    model.setup_caches(2, 32)  # takes dtype and device from the embedding, not the (quantized) head
    assert model(torch.zeros(2, 1, dtype=torch.long), torch.tensor([0])).shape == (2, 1, 512)
