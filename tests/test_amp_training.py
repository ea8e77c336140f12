"""MixedPrecision end to end on the CPU: convergence vs fp32, resume bit-exactness, why fp32 masters matter."""
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from qtorch.amp import LossScaler, MixedPrecision
from qtorch.models import build_llama


# Stated tolerance: after 80 AdamW steps the mixed-precision loss is within 5% of the fp32 loss (measured: <= 2%).
CONVERGENCE_RTOL = 0.05


def _mlp(n_out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 16), nn.GELU(),
                         nn.Linear(16, n_out))


def _task(kind: str):
    """1024 samples: 4-class labels of a noisy linear teacher, or a noisy sine of a projection (regression)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 8, generator=g)  # (B, 8) fp32
    w = torch.randn(8, 4, generator=g)
    if kind == "classification":
        return x, (x @ w + 0.5 * torch.randn(1024, 4, generator=g)).argmax(1), nn.CrossEntropyLoss(), 4
    return x, torch.sin(x @ w[:, :1]) + 0.1 * torch.randn(1024, 1, generator=g), nn.MSELoss(), 1


def _final_loss(kind: str, dtype, steps: int = 80) -> float:
    x, y, loss_fn, n_out = _task(kind)
    model = _mlp(n_out)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    mp = None if dtype is None else MixedPrecision(model, opt, dtype=dtype)
    xb = x if dtype is None else x.to(dtype)
    for _ in range(steps):
        loss = loss_fn(model(xb), y)
        if mp is None:
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            mp.backward(loss)
            mp.step()
    with torch.no_grad():
        return loss_fn(model(xb).float(), y).item()


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_convergence_matches_fp32(kind):
    ref = _final_loss(kind, None)
    for dtype in (torch.bfloat16, torch.float16):
        got = _final_loss(kind, dtype)
        assert abs(got - ref) <= CONVERGENCE_RTOL * ref, f"{dtype}: final loss {got:.5f} vs fp32 {ref:.5f}"


def _llama_run(mp: MixedPrecision, model, batches):
    for tokens in batches:
        logits = model(tokens[:, :-1])  # (B, S, V) half
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        mp.backward(loss)
        mp.step(max_grad_norm=1.0)


def _llama_setup(dtype):
    model = build_llama("tiny", seed=0, max_seq_len=32).train()
    groups = [{"params": [p for n, p in model.named_parameters() if "norm" in n], "weight_decay": 0.0},
              {"params": [p for n, p in model.named_parameters() if "norm" not in n]}]
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.1)
    scaler = LossScaler(2.0**20, growth_interval=2) if dtype == torch.float16 else None  # scale changes en route
    return model, opt, MixedPrecision(model, opt, dtype=dtype, loss_scale=scaler)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resume_is_bit_exact(dtype):
    """Train k steps, save, train k more; vs load into a fresh wrapper and train the same k: identical state."""
    g = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, 512, (2, 17), generator=g) for _ in range(6)]
    model, _, mp = _llama_setup(dtype)
    _llama_run(mp, model, batches[:3])
    buf = io.BytesIO()
    torch.save(mp.state_dict(), buf)
    _llama_run(mp, model, batches[3:])

    model2, _, mp2 = _llama_setup(dtype)
    buf.seek(0)
    mp2.load_state_dict(torch.load(buf))
    _llama_run(mp2, model2, batches[3:])

    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), f"half weights differ: {name}"
    s1, s2 = mp.state_dict(), mp2.state_dict()
    for name in s1["masters"]:
        assert torch.equal(s1["masters"][name], s2["masters"][name]), f"masters differ: {name}"
    o1, o2 = s1["optimizer"]["state"], s2["optimizer"]["state"]
    assert o1.keys() == o2.keys() and len(o1) == sum(1 for _ in model.parameters())
    for i in o1:
        for key in o1[i]:
            assert torch.equal(o1[i][key], o2[i][key]), f"optimizer state {i}.{key} differs"
    assert s1["loss_scaler"] == s2["loss_scaler"]
    assert (s1["updates"], s1["skipped_steps"]) == (s2["updates"], s2["skipped_steps"])
    if dtype == torch.float16:
        assert s1["loss_scaler"]["scale"] != 2.0**20, "the scale should have moved during the run"


def test_masters_keep_updates_that_half_weights_round_away():
    """Param += small update: 1 + 1e-4 rounds back to 1 in fp16 (ulp 2^-10), so pure-fp16 SGD never moves;
    the fp32 master accumulates the 100 updates (Micikevicius et al., section 3.1)."""
    moved = {}
    for master_weights in (True, False):
        torch.manual_seed(0)
        model = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(1.0)
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        mp = MixedPrecision(model, opt, dtype=torch.float16, loss_scale=None, master_weights=master_weights)
        x = torch.ones(1, 4, dtype=torch.float16)
        for _ in range(100):
            mp.backward(-model(x).float().sum())  # d loss / d w = -1: each step adds lr = 1e-4
            mp.step()
        moved[master_weights] = (model.weight.float() - 1.0).abs().max().item()
    assert moved[False] == 0.0
    assert moved[True] == pytest.approx(1e-2, rel=0.1)  # 100 · 1e-4, seen through fp16 rounding of 1.01
