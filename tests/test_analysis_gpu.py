"""On the GPU: FLOP formulas of the CUDA attention kernels (flash / efficient / cuDNN), and predicted vs measured
peak memory (torch.cuda.memory_stats) of a training step and of a quantized model's forward."""
import pytest
import torch
import torch.nn.functional as F

from qtorch.analysis import (count_flops, forward_flops, from_llama_config, inference_peak, measure_memory,
                             training_step_peak)
from qtorch.models import build_llama

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("batch, seq", [(1, 1), (3, 17), (2, 129)])
@pytest.mark.parametrize("causal, conventions", [("dense", "flop-counter"), ("exact", "flop-counter-causal")])
@pytest.mark.parametrize("backend", ["flash", "efficient"])
def test_cuda_attention_flops_agree_with_analytic(batch, seq, causal, conventions, backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = build_llama("tiny", device="cuda", dtype=torch.bfloat16, n_kv_heads=4).train()  # MHA: every backend
    cfg = from_llama_config(model.config)
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")
    kernel = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]
    with sdpa_kernel(kernel):
        measured = count_flops(model, (tokens,), causal=causal)
    ops = "".join(measured.by_op)
    assert backend in ops, ops  # the kernel asked for ran
    analytic = forward_flops(cfg, batch, seq, conventions).matmul_total
    assert measured.forward_flops == analytic
    assert measured.backward_flops == 2 * analytic


def test_cuda_training_step_peak_within_10_percent():
    from qtorch.amp import MixedPrecision

    torch.cuda.empty_cache()
    model = build_llama("small", device="cuda").train()
    cfg = from_llama_config(model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    mixed = MixedPrecision(model, optimizer, dtype=torch.bfloat16)
    tokens, targets = torch.randint(0, cfg.vocab_size, (2, 4, 512), device="cuda").unbind(0)

    def step():
        mixed.backward(F.cross_entropy(model(tokens).float().flatten(0, 1), targets.flatten()))
        mixed.step()

    step()
    step()
    predicted = training_step_peak(cfg, 4, 512, "amp-bf16", "adam", "fused")
    measured = measure_memory(step, model=model, optimizer=optimizer, device="cuda")
    _check(measured, predicted, "train step")


def _check(measured, predicted, what):
    """Predicted model bytes vs the measured peak less the library workspaces allocated before the call."""
    model_peak = measured.peak_bytes - measured.untracked_start_bytes
    error = (predicted.peak - model_peak) / model_peak
    print(f"{what}: measured {measured.peak_bytes:,} (workspaces {measured.untracked_start_bytes:,}, tracked "
          f"{measured.tracked_peak_bytes:,}), predicted {predicted.peak:,} at {predicted.peak_event}: {error:+.2%}")
    assert measured.method == "cuda.memory_stats"
    assert measured.untracked_start_bytes < 256 << 20
    assert abs(error) < 0.10


def test_cuda_quantized_forward_peak_within_10_percent():
    import gc

    import qtorch

    gc.collect()  # tensors of earlier tests in this process would count as untracked start bytes
    torch.cuda.empty_cache()
    model = build_llama("llama-200m", device="cuda", dtype=torch.bfloat16)  # weights dominate, as deployed
    cfg = from_llama_config(model.config)
    summary = qtorch.quantize_(model, qtorch.GroupWeightOnlyConfig(bits=4, group_size=128))
    tokens = torch.randint(0, cfg.vocab_size, (1, 256), device="cuda")
    with torch.inference_mode():
        model(tokens)
        predicted = inference_peak(cfg, 1, 256, "int4-g128", quantize_head="output" in summary.converted)
        measured = measure_memory(lambda: model(tokens), model=model, device="cuda")
    _check(measured, predicted, "int4 forward")


def test_cuda_memory_stats_and_tracking_agree_on_plain_allocations():
    torch.cuda.empty_cache()

    def step():
        a = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")
        b = torch.empty(2 << 20, dtype=torch.uint8, device="cuda")
        del a, b

    m = measure_memory(step, device="cuda")
    assert m.peak_bytes - m.start_bytes == 3 << 20 == m.tracked_peak_bytes


def test_cuda_garbage_from_before_the_call_is_not_freed_inside_it():
    """A reference cycle holding a CUDA tensor (as a failed test's traceback holds its frames) is freed when the cyclic
    collector runs, which can be inside the measured call: measure_memory collects it before its baseline."""
    import gc

    class Cycle:
        pass

    cycle = Cycle()
    cycle.self, cycle.tensor = cycle, torch.empty(8 << 20, dtype=torch.uint8, device="cuda")
    del cycle

    def step():
        gc.collect()  # the collector running inside the call, as it may after any Python allocation
        a = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")
        del a

    m = measure_memory(step, device="cuda")
    assert m.peak_bytes - m.start_bytes == 1 << 20 == m.tracked_peak_bytes
