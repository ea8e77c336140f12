"""MixedPrecision mechanics: conversion, fp32 modules, optimizer repointing, accumulation, clipping, compile, memory."""
import copy

import pytest
import torch
import torch.nn as nn

from qtorch.amp import MixedPrecision
from qtorch.models import build_llama


class Net(nn.Module):
    """Linear → LayerNorm → GELU → Linear → Softmax, with awkward sizes (7 → 13 → 5)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(7, 13)
        self.norm = nn.LayerNorm(13)
        self.fc2 = nn.Linear(13, 5)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        return self.softmax(self.fc2(nn.functional.gelu(self.norm(self.fc1(x)))))


def _net(seed=0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _loss(model, x, dtype):
    return (model(x.to(dtype)).float() * torch.arange(5.0)).sum()


def test_conversion_dtypes_and_fp32_islands():
    model = _net()
    original = copy.deepcopy(model)
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.bfloat16)
    assert model.fc1.weight.dtype == model.fc2.bias.dtype == torch.bfloat16
    assert model.norm.weight.dtype == torch.float32 and torch.equal(model.norm.weight, original.norm.weight)
    assert set(mp.fp32_module_names) == {"norm", "softmax"}
    # Masters are exact fp32 originals; the optimizer holds them (fp32 modules' params are their own masters).
    held = [p for g in mp.optimizer.param_groups for p in g["params"]]
    assert all(p.dtype == torch.float32 for p in held)
    assert torch.equal(held[0], original.fc1.weight) and held[2] is model.norm.weight
    seen = {}

    def record(name):
        def hook(module, args):
            seen[name] = args[0].dtype
        return hook

    model.norm.register_forward_pre_hook(record("norm_in"))  # runs after the wrapper's upcasting hook
    model.fc2.register_forward_pre_hook(record("fc2_in"))
    out = model(torch.randn(3, 7, dtype=torch.bfloat16))
    assert seen == {"norm_in": torch.float32, "fc2_in": torch.bfloat16}
    assert out.dtype == torch.bfloat16  # softmax ran in fp32, output back in half


def test_loss_modules_keep_fp32_output_and_patterns_select_modules():
    model = nn.ModuleDict({"head": nn.Linear(6, 3), "body": nn.Linear(6, 6), "loss": nn.CrossEntropyLoss()})
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=torch.float16,
                        fp32_modules=("head", nn.CrossEntropyLoss))
    assert model["head"].weight.dtype == torch.float32 and model["body"].weight.dtype == torch.float16
    logits = model["head"](model["body"](torch.randn(4, 6, dtype=torch.float16)))
    assert logits.dtype == torch.float16
    loss = model["loss"](logits, torch.tensor([0, 1, 2, 0]))
    assert loss.dtype == torch.float32
    assert mp.fp32_module_names == ["head", "loss"]
    plain = _net()
    MixedPrecision(plain, torch.optim.SGD(plain.parameters(), lr=0.1), dtype=torch.float16, fp32_modules=())
    assert plain.norm.weight.dtype == torch.float16


def test_llama_rmsnorm_runs_in_fp32_and_rope_table_stays_fp32():
    model = build_llama("tiny", max_seq_len=16).train()
    mp = MixedPrecision(model, torch.optim.AdamW(model.parameters()), dtype=torch.bfloat16)
    assert len(mp.fp32_module_names) == 2 * model.config.n_layers + 1  # attention_norm, ffn_norm per layer; norm
    assert model.norm.weight.dtype == torch.float32 and model.output.weight.dtype == torch.bfloat16
    assert model.freqs.dtype == torch.float32  # the model's own _apply keeps its rotary table in fp32
    assert model(torch.randint(0, 512, (2, 9))).dtype == torch.bfloat16


@pytest.mark.parametrize("make_opt", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda ps: torch.optim.Adam(ps, lr=1e-2),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
], ids=["SGD", "Adam", "AdamW"])
def test_optimizer_steps_masters_with_float_of_half_grads(make_opt):
    """Without scaling, each update is exactly the optimizer's fp32 step on float(g16); half = round(master)."""
    x = torch.randn(6, 7)
    model = _net()
    mp = MixedPrecision(model, make_opt(model.parameters()), dtype=torch.bfloat16)
    ref_half = copy.deepcopy(model)  # the same half model, unwrapped: computes the half gradients
    ref_master = [p.detach().clone().requires_grad_() for g in mp.optimizer.param_groups for p in g["params"]]
    ref_opt = make_opt(ref_master)
    for _ in range(3):
        ref_half.zero_grad()
        _loss(ref_half, x, torch.bfloat16).backward()
        for m, p in zip(ref_master, ref_half.parameters()):
            m.grad = p.grad.float()
        ref_opt.step()
        with torch.no_grad():
            for m, p in zip(ref_master, ref_half.parameters()):
                p.copy_(m)
        mp.backward(_loss(model, x, torch.bfloat16))
        assert mp.step() is True
    for m, mine in zip(ref_master, [p for g in mp.optimizer.param_groups for p in g["params"]]):
        assert torch.equal(m, mine)
    for p, q in zip(ref_half.parameters(), model.parameters()):
        assert torch.equal(p, q)


def test_param_groups_hyperparameters_and_frozen_parameters():
    model = _net()
    model.fc1.bias.requires_grad_(False)  # frozen, not in the optimizer
    frozen_before = model.fc1.bias.detach().clone()
    opt = torch.optim.SGD([{"params": [model.fc1.weight], "lr": 0.0},
                           {"params": [model.fc2.weight, model.fc2.bias], "lr": 0.1, "momentum": 0.5},
                           {"params": model.norm.parameters()}], lr=0.01)
    mp = MixedPrecision(model, opt, dtype=torch.float16, loss_scale=1024.0)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.1, 0.01] and opt.param_groups[1]["momentum"] == 0.5
    fc1_before, fc2_before = model.fc1.weight.detach().clone(), model.fc2.weight.detach().clone()
    for _ in range(2):
        mp.backward(_loss(model, torch.randn(4, 7), torch.float16))
        assert mp.step()
    assert torch.equal(model.fc1.weight, fc1_before)  # lr 0
    assert not torch.equal(model.fc2.weight, fc2_before)
    assert model.fc1.bias.dtype == torch.float16 and torch.equal(model.fc1.bias.float(), frozen_before.half().float())
    assert mp.memory_breakdown()["fp32_masters"] == 4 * (7 * 13 + 13 * 5 + 5)  # no master for the frozen bias


def test_gradient_accumulation_sums_in_fp32():
    """Four backward calls then one step: the SGD(lr=1) update equals -Σ float(g16_i), summed in fp32."""
    xs = [torch.randn(3, 7) for _ in range(4)]
    model = _net()
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=1.0), dtype=torch.bfloat16)
    ref = copy.deepcopy(model)
    masters_before = [p.detach().clone() for g in mp.optimizer.param_groups for p in g["params"]]
    total = None
    for x in xs:
        ref.zero_grad()
        _loss(ref, x, torch.bfloat16).backward()
        grads = [p.grad.float() for p in ref.parameters()]
        total = grads if total is None else [t + g for t, g in zip(total, grads)]
        mp.backward(_loss(model, x, torch.bfloat16))
    assert mp.step()
    masters_after = [p for g in mp.optimizer.param_groups for p in g["params"]]
    for before, after, g in zip(masters_before, masters_after, total):
        torch.testing.assert_close(before - after, g, rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())  # step consumed the gradients


def test_clipping_uses_unscaled_fp32_gradients():
    x = torch.randn(8, 7)
    ref = _net().float()
    _loss(ref, x, torch.float32).backward()
    ref_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ref.parameters()]))
    model = _net()
    mp = MixedPrecision(model, torch.optim.SGD(model.parameters(), lr=1.0), dtype=torch.float16, loss_scale=256.0)
    before = [p.detach().clone() for g in mp.optimizer.param_groups for p in g["params"]]
    mp.backward(_loss(model, x, torch.float16))
    max_norm = ref_norm.item() / 4
    assert mp.step(max_grad_norm=max_norm)
    after = [p for g in mp.optimizer.param_groups for p in g["params"]]
    torch.testing.assert_close(mp.last_grad_norm, ref_norm, rtol=2e-2, atol=0)  # not scaled by 256
    step_norm = torch.linalg.vector_norm(torch.stack([(b - a).norm() for b, a in zip(before, after)]))
    torch.testing.assert_close(step_norm, torch.tensor(max_norm), rtol=1e-4, atol=0)


def test_torch_compile_of_the_wrapped_model_matches_eager():
    x = torch.randn(5, 7)
    results = []
    for compiled in (False, True):
        model = _net()
        mp = MixedPrecision(model, torch.optim.Adam(model.parameters(), lr=1e-2), dtype=torch.float16,
                            loss_scale=1024.0)
        run = torch.compile(model, backend="aot_eager", fullgraph=True) if compiled else model
        for _ in range(3):
            mp.backward(_loss(run, x, torch.float16))
            assert mp.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-3)


def _llama_adam(master_weights=True, fp32_modules=None):
    model = build_llama("tiny", max_seq_len=16).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kwargs = {} if fp32_modules is None else {"fp32_modules": fp32_modules}
    mp = MixedPrecision(model, opt, dtype=torch.float16, master_weights=master_weights, **kwargs)
    tokens = torch.randint(0, 512, (2, 9))
    for _ in range(2):  # a step creates Adam's state; the second backward leaves half gradients in place
        mp.backward(nn.functional.cross_entropy(model(tokens[:, :-1]).float().flatten(0, 1), tokens[:, 1:].flatten()))
        if not mp.updates:
            assert mp.step()
    return model, mp


def test_memory_breakdown_is_16_bytes_per_parameter_with_adam():
    model, mp = _llama_adam()
    n = sum(p.numel() for p in model.parameters())
    n_norm = sum(p.numel() for name, p in model.named_parameters() if "norm" in name)
    b = mp.memory_breakdown()
    assert b["half_weights"] == b["half_grads"] == 2 * (n - n_norm)
    assert b["fp32_masters"] == 4 * (n - n_norm)
    assert b["fp32_params"] == b["fp32_param_grads"] == 4 * n_norm  # fp32 modules: their own masters
    assert b["optimizer_states"] == 8 * n  # exp_avg + exp_avg_sq
    assert b["optimizer_scalars"] == 4 * sum(1 for _ in model.parameters())  # one fp32 step counter per tensor
    per_param = b["half_weights"] + b["half_grads"] + b["fp32_masters"] + b["optimizer_states"] \
        + b["fp32_params"] + b["fp32_param_grads"]
    assert per_param == 16 * n
    assert b["fp32_master_grads"] == 0 and b["other_params"] == 0
    assert b["total"] == per_param + b["optimizer_scalars"]


def test_memory_breakdown_all_half_and_no_masters():
    model, mp = _llama_adam(fp32_modules=())
    n = sum(p.numel() for p in model.parameters())
    b = mp.memory_breakdown()
    roles = ("half_weights", "half_grads", "fp32_masters", "optimizer_states")
    assert tuple(b[k] for k in roles) == (2 * n, 2 * n, 4 * n, 8 * n)
    model, mp = _llama_adam(master_weights=False, fp32_modules=())
    b = mp.memory_breakdown()  # pure half training: Adam's moments are half too
    assert tuple(b[k] for k in roles) == (2 * n, 2 * n, 0, 4 * n)
