"""Analytic vs measured on CPU: FLOPs (FlopCounterMode) of the project's LLaMA, saved activations, peak memory of
a training step (tensor tracking), and FLOP formulas of qtorch's own ops."""
import pytest
import torch
import torch.nn.functional as F

from qtorch.analysis import (activation_memory, count_flops, count_params, forward_flops, from_llama_config,
                             measure_memory, training_step_peak)
from qtorch.models import build_llama

# ragged shapes: odd batch, prime sequence lengths, GQA (tiny: 4 heads, 2 KV heads)
SHAPES = [(1, 1), (3, 37), (2, 61)]


def _model(**overrides):
    model = build_llama("tiny", **overrides).train()
    return model, from_llama_config(model.config)


@pytest.mark.parametrize("batch, seq", SHAPES)
@pytest.mark.parametrize("causal, conventions", [("dense", "flop-counter"), ("exact", "flop-counter-causal")])
def test_measured_flops_agree_with_analytic(batch, seq, causal, conventions):
    model, cfg = _model()
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq))
    measured = count_flops(model, (tokens,), backward=True, causal=causal)
    analytic = forward_flops(cfg, batch, seq, conventions)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    assert abs(measured.forward_flops - analytic.matmul_total) <= 0.01 * analytic.matmul_total
    assert measured.forward_flops == analytic.matmul_total  # in fact exact
    assert measured.backward_flops == 2 * measured.forward_flops
    assert measured.total_int8_ops == 0
    # the per-module table attributes the head and every layer
    wq = measured.by_module["Llama.layers.0.attention.wq"]
    assert wq["forward"] == 2 * batch * seq * cfg.hidden_size * cfg.q_dim and wq["backward"] == 2 * wq["forward"]
    assert "layers.1" in measured.table(depth=2)


def test_plain_flop_counter_misses_cpu_attention():
    """Why count_flops adds formulas: FlopCounterMode alone counts 0 for SDPA on CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    model, cfg = _model()
    tokens = torch.randint(0, cfg.vocab_size, (2, 16))
    with FlopCounterMode(display=False) as plain:
        model(tokens)
    ours = count_flops(model, (tokens,), backward=False)
    pairs = 2 * cfg.n_heads * 16 * 16
    assert ours.forward_flops - plain.get_total_flops() == cfg.n_layers * 4 * pairs * cfg.d


def test_elementwise_terms_are_what_the_counter_does_not_see():
    cfg = _model()[1]
    full = forward_flops(cfg, 3, 37, "qtorch")
    counted = forward_flops(cfg, 3, 37, "flop-counter-causal")
    assert full.matmul_total == counted.total
    names = {r.name for r in full.rows if not r.matmul}
    assert names == {"attention.rope", "attention.softmax", "residual", "feed_forward.swish", "feed_forward.product",
                     "attention_norm, ffn_norm (rmsnorm)", "norm (final rmsnorm)"}


def _saved_activation_bytes(model, tokens) -> int:
    """Bytes of distinct storages autograd saves in a forward pass, parameters and buffers excluded."""
    skip = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            saved[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(tokens)
    return sum(saved.values())


@pytest.mark.parametrize("batch, seq", [(3, 37), (2, 64)])
def test_saved_activations_match_the_per_layer_formula(batch, seq):
    model, cfg = _model()
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq))
    predicted = activation_memory(cfg, batch, seq, act_bytes=4)
    assert _saved_activation_bytes(model, tokens) == predicted.total


def _train_step(model, optimizer, tokens, targets, mixed=None):
    def step():
        loss = F.cross_entropy(model(tokens).float().flatten(0, 1), targets.flatten())
        if mixed is not None:
            mixed.backward(loss)
            mixed.step()
        else:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return step


@pytest.mark.parametrize("recipe, impl, overrides", [
    ("fp32", "for-loop", {}), ("fp32", "foreach", {}), ("amp-bf16", "foreach", {}),
    ("amp-bf16", "for-loop", {"vocab_size": 64, "hidden_dim": 1024})])  # last: the peak inside a layer's backward
def test_training_step_peak_matches_tensor_tracking(recipe, impl, overrides):
    from qtorch.amp import MixedPrecision

    model, cfg = _model(**overrides)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=impl == "foreach")
    mixed = MixedPrecision(model, optimizer, dtype=torch.bfloat16) if recipe == "amp-bf16" else None
    tokens, targets = torch.randint(0, cfg.vocab_size, (2, 2, 48)).unbind(0)
    step = _train_step(model, optimizer, tokens, targets, mixed)
    step()  # warm-up: optimizer state
    predicted = training_step_peak(cfg, 2, 48, recipe, "adam", impl)
    measured = measure_memory(step, model=model, optimizer=optimizer, predicted_bytes=predicted.peak)
    assert measured.method == "tensor-tracking"
    assert abs(measured.relative_error) < 0.01, (measured.peak_bytes, predicted.peak, predicted.peak_event)
    states = measured.by_category["optimizer_states"]
    assert states >= 2 * 4 * sum(p.numel() for p in model.parameters())
    if mixed is not None:
        assert measured.by_category["masters"] == 4 * sum(m.numel() for m in mixed._masters)


def test_measure_memory_tracks_allocations_and_frees():
    held = []

    def step():
        a = torch.empty(1 << 20, dtype=torch.uint8)
        b = torch.empty(2 << 20, dtype=torch.uint8)
        del a
        held.append(torch.empty(1 << 19, dtype=torch.uint8))
        del b

    m = measure_memory(step)
    assert m.peak_bytes == 3 << 20 and m.start_bytes == 0
    assert m.by_category["activations_and_temporaries"] == 3 << 20


def test_measure_memory_keeps_no_reference_to_model_or_optimizer():
    """The storage finalizers must not keep the model alive (a leak found on the H200: 310 MB of an earlier test's
    model counted as untracked start bytes of the next measurement)."""
    import gc
    import weakref

    def measure_once():
        model, cfg = _model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        tokens = torch.randint(0, cfg.vocab_size, (1, 8))

        def step():
            model(tokens).float().sum().backward()
            optimizer.step()

        step()
        measure_memory(step, model=model, optimizer=optimizer)
        return [weakref.ref(model), weakref.ref(optimizer)]

    refs = measure_once()
    gc.collect()
    assert all(r() is None for r in refs)


def _qtorch_ops():
    return pytest.importorskip("qtorch.ops")


def test_qtorch_int8_ops_counted_as_int8_ops():
    ops = _qtorch_ops()
    m, k, n = 5, 96, 40
    x = torch.randn(m, k)
    w_q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    w_scale, w_colsum = torch.rand(n) + 0.1, w_q.sum(1, dtype=torch.int32)

    def w8a8(x):
        x_q, x_scale, x_zp = ops.quantize_per_token(x)
        return ops.int8_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, None, None, torch.float32)

    c = count_flops(w8a8, (x,), backward=False)
    assert c.forward_int8_ops == 2 * m * n * k and c.forward_flops == 0
    assert "qtorch.int8_scaled_mm" in c.by_op


def test_qtorch_weight_only_counted_as_float_flops():
    ops = _qtorch_ops()
    m, k, n = 3, 128, 24
    w_q, w_scale, w_zp = ops.group_quantize(torch.randn(n, k), 4, 32, True)
    c = count_flops(lambda x: ops.weight_only_linear(x, w_q, w_scale, w_zp, 4, 32, None), (torch.randn(m, k),),
                    backward=False)
    assert c.forward_flops == 2 * m * n * k and c.forward_int8_ops == 0


def test_int_mm_counted_as_int8_ops():
    a, b = torch.randint(-8, 8, (32, 64), dtype=torch.int8), torch.randint(-8, 8, (64, 48), dtype=torch.int8)
    try:
        torch._int_mm(a, b)
    except RuntimeError:
        pytest.skip("torch._int_mm has no CPU kernel in this build")
    c = count_flops(torch._int_mm, (a, b), backward=False)
    assert c.forward_int8_ops == 2 * 32 * 64 * 48 and c.forward_flops == 0
