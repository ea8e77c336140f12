"""GPU checks of the model benchmark and the demo: every implementation the speed benchmark compares computes the
same model (logits close to bf16's), the harness runs end to end, and the demo runs on CUDA."""
import pytest
import torch

from qtorch.cli.main import main
from qtorch.eval.evaluate import logits_errors
from qtorch.eval.speed import build_model, implementations, quantize_impl, run_speed
from qtorch_baselines import torchao
from qtorch_baselines.speed import speed_baselines

pytestmark = pytest.mark.cuda

# logits SQNR (dB) each implementation must keep against bf16 on one 7B-shaped block (random weights)
# Logit SQNR of one 7B-shaped block + the head, random N(0, 0.02) weights, vs bf16. int4 g128 errors compound through
# the projections: on the H200 (2026-11-28) qtorch w4a16 gave 8.9 dB and torchao int4 7.9 dB, so 7 dB is the floor.
# FP8 e4m3 row-wise (3 mantissa bits) sits ~10 dB below int8 W8A8 per layer (28.5 vs 38.4 dB, issue 16): floor 15 dB.
MIN_SQNR_DB = {"w8a8": 20.0, "w8a16": 25.0, "w4a16": 7.0, "fp8": 15.0}
SCHEMES = ("w8a8", "w4a16", "w8a16")
BASELINES = speed_baselines(SCHEMES, with_torchao=torchao.available())


@torch.no_grad()
@pytest.mark.parametrize("impl", implementations(SCHEMES, BASELINES)[1:])
def test_benchmarked_implementations_compute_the_same_model(impl):
    device = torch.device("cuda")
    tokens = torch.randint(0, 32000, (2, 64), device=device, generator=torch.Generator(device).manual_seed(3))
    reference = build_model("llama2-7b-shaped", 1, device)(tokens).float()
    model = build_model("llama2-7b-shaped", 1, device)
    quantize_impl(model, impl, BASELINES)
    out = model(tokens).float()
    scheme = next(s for s, impls in BASELINES.items() if impl in impls or impl == f"qtorch_{s}")
    errors = logits_errors(reference, out)
    assert errors["sqnr_db"] >= MIN_SQNR_DB["fp8" if "fp8" in impl else scheme], (impl, errors)


def test_speed_harness_eager_small():
    measurements, failures = run_speed(SCHEMES, "small", 1, prefill_len=256, decode_batches=(1, 4),
                                       decode_pos=10, decode_cache=64, compile_model=False, baselines=BASELINES,
                                       progress=False)
    # torchao's eager int8 dynamic path is not CUDA-graph capturable (seen on the H200): reported, not ours to fail.
    ours = {impl: why for impl, why in failures.items() if not impl.startswith("torchao")}
    assert not ours, ours
    assert {m.impl for m in measurements} >= {"bf16", "qtorch_w8a8", "fp8_rowwise", "qtorch_w4a16", "qtorch_w8a16"}
    assert all(m.tokens_per_s > 0 and m.slice_us > m.fixed_us > 0 for m in measurements)


def test_demo_runs_on_cuda(capsys):
    code = main(["demo", "--device", "cuda", "--model", "llama", "--llama-preset", "tiny", "--schemes",
                 "w8a8,w8a16,w4a16,w4a16-gptq", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "on cuda, bfloat16" in out and "w4a16-gptq" in out
