"""MixedPrecision on a CUDA device: fused multi-tensor paths, fused AdamW, exact memory accounting, skipped steps."""
import pytest
import torch
import torch.nn.functional as F

from qtorch.amp import MixedPrecision
from qtorch.models import build_llama

pytestmark = pytest.mark.cuda


def _train(dtype, steps=60, fused=True):
    """Tiny LLaMA, AdamW on fixed batches of a noisy sequence; returns (model, wrapper, per-step losses)."""
    model = build_llama("tiny", seed=0, device="cuda", max_seq_len=64).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, fused=fused)
    mp = None if dtype is None else MixedPrecision(model, opt, dtype=dtype)
    g = torch.Generator(device="cuda").manual_seed(0)
    jumps = 7 + torch.randint(0, 4, (steps, 8, 65), device="cuda", generator=g)  # next = current + 7..10 (mod 512)
    tokens = jumps.cumsum(-1) % 512  # (steps, B, 65); loss floor ln 4 ≈ 1.39
    losses = []
    for batch in tokens:
        loss = F.cross_entropy(model(batch[:, :-1]).float().flatten(0, 1), batch[:, 1:].flatten())
        if mp is None:
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            mp.backward(loss)
            assert mp.step(max_grad_norm=1.0)
        losses.append(loss.detach())
    return model, mp, torch.stack(losses).tolist()


def test_cuda_training_matches_fp32():
    """Mean loss of the last 10 steps within 3% of fp32's (the batches are the same for every run)."""
    _, _, ref = _train(None)
    ref_tail = sum(ref[-10:]) / 10
    assert ref_tail < 0.5 * ref[0]  # it learns
    for dtype in (torch.float16, torch.bfloat16):
        _, mp, got = _train(dtype)
        tail = sum(got[-10:]) / 10
        assert abs(tail - ref_tail) <= 0.03 * ref_tail, (dtype, tail, ref_tail)
        assert mp.skipped_steps == 0


def test_cuda_memory_breakdown_matches_the_allocator():
    torch.cuda.synchronize()
    model, mp, _ = _train(torch.float16, steps=2)
    tokens = torch.randint(0, 512, (2, 17), device="cuda")
    mp.backward(F.cross_entropy(model(tokens[:, :-1]).float().flatten(0, 1), tokens[:, 1:].flatten()))
    n = sum(p.numel() for p in model.parameters())
    b = mp.memory_breakdown()
    assert b["half_weights"] + b["half_grads"] + b["fp32_masters"] + b["optimizer_states"] + b["fp32_params"] \
        + b["fp32_param_grads"] == 16 * n
    # Everything the wrapper accounts for is on the device, in the allocator's live bytes.
    assert b["total"] <= torch.cuda.memory_allocated()


def test_cuda_injected_inf_skips_and_halves():
    model, mp, _ = _train(torch.float16, steps=1)
    before = [m.detach().clone() for m in mp.masters]
    tokens = torch.randint(0, 512, (2, 17), device="cuda")
    mp.backward(F.cross_entropy(model(tokens[:, :-1]).float().flatten(0, 1), tokens[:, 1:].flatten()))
    model.output.weight.grad[3, 5] = float("inf")
    assert mp.step() is False and mp.loss_scale == 2.0**15
    assert all(torch.equal(a, b) for a, b in zip(before, mp.masters))
    assert all(torch.equal(h, m.to(h.dtype)) for h, m in zip(mp._halves, mp.masters))
