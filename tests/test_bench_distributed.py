"""benchmarks/bench_distributed.py off the GPU: its arguments, its variant list, its per-rank prediction, and a
one-process CPU run writing records in the shared format."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_distributed as bench  # noqa: E402


def test_defaults_and_variants():
    args = bench.parse_args([])
    assert (args.model, args.batch, args.seq) == ("llama-1b", 4, 2048)
    assert bench.variants(args, True) == [("ddp", "qtorch_bf16"), ("ddp", "torch_amp_bf16"), ("fsdp", "qtorch_bf16"),
                                       ("fsdp", "torch_amp_bf16"), ("fsdp", "fsdp_mp_bf16"),
                                       ("fsdp_zero2", "qtorch_bf16"), ("fsdp_zero2", "torch_amp_bf16"),
                                       ("fsdp_zero2", "fsdp_mp_bf16")]
    assert bench.variants(args, False) == []  # data-parallel engines need torchrun
    single = bench.parse_args(["--engines", "single", "--impls", "fp32,qtorch_bf16"])
    assert bench.variants(single, False) == [("single", "fp32"), ("single", "qtorch_bf16")]


@pytest.mark.parametrize("argv, message", [
    (["--engines", "deepspeed"], "--engines"), (["--impls", ""], "--impls"), (["--steps", "0"], "--steps"),
    (["--warmup", "5", "--steps", "5"], "--warmup")])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_llama_1b_size_and_prediction():
    from qtorch.analysis import count_params, from_llama_config
    from qtorch.models import get_config

    name, overrides = bench.model_overrides(bench.parse_args([]))
    cfg = from_llama_config(bench.replace(get_config(name), **overrides))
    assert 0.9e9 < count_params(cfg) < 1.1e9
    args = bench.parse_args([])
    ddp, zero2, fsdp = (bench.predicted_peak(engine, "qtorch_bf16", args, 2) for engine in ("ddp", "fsdp_zero2",
                                                                                         "fsdp"))
    assert 0 < fsdp < zero2 < ddp


def test_single_process_cpu_run_writes_records(tmp_path):
    records = bench.main(["--engines", "single", "--impls", "qtorch_bf16", "--device", "cpu", "--model", "tiny",
                          "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
                          "--results-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "cpu.json").read_text())["records"]
    assert saved == records and len(records) == 1
    r = records[0]
    assert r["benchmark"] == "distributed_train" and r["impl"] == "single_qtorch_bf16"
    assert r["median_us"] > 0 and r["metrics"]["tokens_per_s"] > 0 and r["metrics"]["final_loss"] > 0
    assert r["params"]["world_size"] == 1 and r["params"]["zero"] == 0
