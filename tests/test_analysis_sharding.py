"""The per-rank memory model: one GPU is the single-GPU replay, and each stage shards what it states."""
import pytest

from qtorch.analysis import count_params, get_preset, training_step_peak
from qtorch.analysis.cli import main
from qtorch.analysis.params import layer_param_counts
from qtorch.analysis.sharding import sharded_training_peak

CFG = get_preset("llama2-7b")
ARGS = dict(cfg=CFG, batch=1, seq=1024, recipe="amp-bf16", optimizer="adam", optimizer_impl="foreach")


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_one_gpu_is_the_single_gpu_replay(zero):
    single = training_step_peak(**ARGS)
    rank = sharded_training_peak(**ARGS, zero=zero, gpus=1)
    assert rank.timeline == single.timeline and rank.peak == single.peak


def _at(peak, event):
    return dict(peak.timeline)[event]


def test_stages_shard_what_they_state():
    n, g = count_params(CFG), 4
    single = training_step_peak(**ARGS)
    ddp = sharded_training_peak(**ARGS, zero=0, gpus=g)
    zero1 = sharded_training_peak(**ARGS, zero=1, gpus=g)
    zero2 = sharded_training_peak(**ARGS, zero=2, gpus=g)
    zero3 = sharded_training_peak(**ARGS, zero=3, gpus=g)
    assert ddp.static["ddp_buckets"] == 2 * n  # a bf16 copy of the gradients
    assert ddp.peak == single.peak + 2 * n
    # ZeRO-1: fp32 masters (4N) + Adam states (8N) sharded, at rest and at the start of the step
    assert _at(zero1, "start") == _at(single, "start") - round(12 * n * (1 - 1 / g))
    # in backward, stage 2 holds all weights gathered and one layer's unsharded gradients; stage 3 the root unit's
    # and two layers' gathered weights and unsharded gradients (bf16: 2 bytes each); the rest is the same
    layer = sum(layer_param_counts(CFG).values())
    unit3 = n - CFG.n_layers * layer + 2 * layer
    event = "backward: embedding"
    expected = (unit3 * (2 + 2) - n * 2 - layer * 2) * (1 - 1 / g)
    assert _at(zero3, event) - _at(zero2, event) == pytest.approx(expected, abs=2)
    assert zero3.peak < zero2.peak < zero1.peak < single.peak < ddp.peak


def test_bad_stage_and_gpus():
    with pytest.raises(ValueError, match="zero"):
        sharded_training_peak(**ARGS, zero=4, gpus=2)
    with pytest.raises(ValueError, match="gpus"):
        sharded_training_peak(**ARGS, zero=3, gpus=0)


def test_cli_prints_the_per_rank_peak(capsys):
    assert main(["llama2-7b", "--batch", "1", "--seq", "1024", "--train", "--gpus", "4", "--zero", "2",
                 "--optimizer-impl", "foreach"]) == 0
    out = capsys.readouterr().out
    peak = sharded_training_peak(**ARGS, zero=2, gpus=4).peak
    assert "Per-rank peak, ZeRO-2 over 4 GPU(s)" in out
    assert f"predicted peak {peak / 1e9:.2f} GB" in out
