"""Degenerate and ragged shapes (K = 1, N = 1, M = 0 / 1, odd K) for every scheme against an independent int64 /
float64 computation, and the NaN/Inf policy: a non-finite input row gives a non-finite output row, identical in
eager and compiled modes, with no error and no host synchronisation (NaN for a NaN row in every scheme; for an Inf
row NaN under the int8 schemes, the float layer's ±Inf/NaN under weight-only and codebook)."""
import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)
from qtorch.nn import QuantLinear
from qtorch.ops.int8_matmul import int8_accumulate

SHAPES = [(0, 1, 8), (1, 1, 8), (3, 1, 1), (1, 7, 1), (17, 5, 3), (2, 33, 5)]  # (M, K, N)


@pytest.mark.parametrize("k", range(1, 12))
@pytest.mark.parametrize("m, n", [(0, 3), (1, 1), (2, 8), (17, 3)])
def test_int8_accumulate_exact(m, k, n):
    x_q = torch.randint(-128, 128, (m, k), dtype=torch.int8)
    w_q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    assert torch.equal(int8_accumulate(x_q, w_q).long(), x_q.long() @ w_q.long().t())


def test_w8a8_linear_with_one_input_feature_matches_float():
    linear = nn.Linear(1, 8)
    x = torch.randn(4, 1)
    ref = linear(x).detach()
    y = QuantLinear.from_float(linear, W8A8DynamicConfig())(x)
    assert (y - ref).abs().max() < 0.02 * ref.abs().max()  # was −4259.1 vs 1.198 (torch._int_mm at K = 1)


def _w8a8(k, n):
    q = torch.randint(-127, 128, (n, k))
    scale = torch.rand(n) * 0.02 + 0.001
    layer = QuantLinear.from_quantized(W8A8DynamicConfig(), q=q, scale=scale, bias=torch.randn(n))
    return layer, q.double() * scale.double()[:, None]


def _weight_only(k, n, config):
    g = k if isinstance(config, Int8WeightOnlyConfig) else config.group_size
    bits = 8 if isinstance(config, Int8WeightOnlyConfig) else config.bits
    lo, hi = -(1 << bits - 1), (1 << bits - 1) - 1
    q = torch.randint(lo, hi + 1, (n, k))
    scale = torch.rand(n, k // g) * 0.02 + 0.001
    zp = torch.zeros(n, k // g, dtype=torch.int64) if getattr(config, "symmetric", True) else \
        torch.randint(lo, hi + 1, (n, k // g))
    layer = QuantLinear.from_quantized(config, q=q, scale=scale, zero_point=zp, bias=torch.randn(n))
    w = scale.double().repeat_interleave(g, 1) * (q - zp.repeat_interleave(g, 1)).double()
    return layer, w


def _codebook(k, n, config):
    g = config.group_size or k
    idx = torch.randint(0, 1 << config.bits, (n, k))
    book = torch.randn(n, k // g, 1 << config.bits)
    layer = QuantLinear.from_quantized(config, indices=idx, codebook=book, bias=torch.randn(n))
    w = torch.gather(book.double(), 2, idx.reshape(n, k // g, g)).reshape(n, k)
    return layer, w


def _build(kind, k, n):
    """(layer, Ŵ (N, K) float64 computed here from the integers the layer was built from)."""
    if kind == "w8a8":
        return _w8a8(k, n)
    if kind == "int8":
        return _weight_only(k, n, Int8WeightOnlyConfig())
    if kind == "codebook8":
        return _codebook(k, n, CodebookConfig(bits=8))
    if kind == "group4":
        return _weight_only(k, n, GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False))
    return _weight_only(k, n, GroupWeightOnlyConfig(bits=8, group_size=32))


def _check(kind, layer, w, x):
    y = layer(x)
    ref = x.double() @ w.t() + layer.bias.double()  # (M, N) float64
    bound = 1e-5 * (x.double().abs() @ w.abs().t() + layer.bias.double().abs()) + 1e-6
    if kind == "w8a8":  # per-token int8 x: |x − x̂| ≤ S_X per element (rounding plus the zero point's rounding)
        x64 = x.double()
        s_x = (x64.amax(1).clamp(min=0) - x64.amin(1).clamp(max=0)) / 255  # (M,)
        bound = bound + s_x[:, None] * w.abs().sum(1)[None, :]
    assert y.shape == ref.shape and y.dtype == x.dtype
    assert ((y.double() - ref).abs() <= bound).all()


@pytest.mark.parametrize("kind", ["w8a8", "int8", "codebook8"])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_any_k_schemes_on_degenerate_shapes(kind, m, k, n):
    layer, w = _build(kind, k, n)
    _check(kind, layer, w, torch.randn(m, k))


@pytest.mark.parametrize("kind", ["group4", "group8"])
@pytest.mark.parametrize("m, k, n", [(0, 32, 8), (1, 32, 1), (17, 96, 3), (2, 160, 5)])  # odd K/g
def test_group_schemes_on_degenerate_shapes(kind, m, k, n):
    layer, w = _build(kind, k, n)
    _check(kind, layer, w, torch.randn(m, k))


NAN_CONFIGS = [W8A8DynamicConfig(), W8A8StaticConfig(), Int8WeightOnlyConfig(),
               GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False), CodebookConfig(bits=4)]


def _nan_layer(config, device="cpu"):
    model = nn.Sequential(nn.Linear(64, 8)).to(device)
    qtorch.quantize_(model, config)
    if isinstance(config, W8A8StaticConfig):
        qtorch.calibrate(model, [torch.randn(16, 64, device=device)], progress=False)
    return model


def _check_nan_policy(model, x, compiled, no_sync=False):
    """The forward (under torch.cuda's sync debug mode "error" when no_sync: no host synchronisation allowed), then
    the checks (which read values, so synchronise)."""
    fn = torch.compile(model, fullgraph=True, backend="aot_eager") if compiled else model
    x = x.clone()
    x[1, 3] = float("nan")
    x[2, 5] = float("inf")
    if no_sync:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        y = fn(x)
    finally:
        if no_sync:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isnan(y[1]).all()
    assert not torch.isfinite(y[2]).any()
    assert torch.isfinite(y[[0, 3]]).all()
    return y


@pytest.mark.parametrize("config", NAN_CONFIGS, ids=repr)
def test_nan_policy_eager_and_compiled(config):
    model = _nan_layer(config)
    x = torch.randn(4, 64)
    eager = _check_nan_policy(model, x, compiled=False)
    compiled = _check_nan_policy(model, x, compiled=True)
    torch.testing.assert_close(compiled, eager, equal_nan=True)


@pytest.mark.cuda
@pytest.mark.parametrize("config", NAN_CONFIGS, ids=repr)
def test_nan_policy_cuda_eager_compiled_and_graph(config):
    model = _nan_layer(config, "cuda").to(torch.bfloat16)
    x = torch.randn(4, 64, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        eager = _check_nan_policy(model, x, compiled=False, no_sync=True)
        _check_nan_policy(model, x, compiled=True)
        static_x = x.clone()
        static_x[1, 3], static_x[2, 5] = float("nan"), float("inf")
        model(static_x)  # warm-up outside the graph
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = model(static_x)
        graph.replay()
        torch.testing.assert_close(static_y, eager, equal_nan=True)


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["w8a8", "int8", "codebook8"])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_degenerate_shapes_cuda(kind, m, k, n):
    layer, w = _build(kind, k, n)
    layer = layer.cuda()
    x = torch.randn(m, k)
    y = layer(x.cuda()).cpu()
    ref_layer = layer.cpu()
    torch.testing.assert_close(y, ref_layer(x), atol=1e-4, rtol=1e-4)
