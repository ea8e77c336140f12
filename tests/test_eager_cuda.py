"""Eager quantized forwards on the GPU (issue 13, eager speed): no host synchronisation in any scheme's forward
(torch.cuda.set_sync_debug_mode("error")), for single layers and for the LLaMA model quantized by each scheme; and a
quantized model captured in a CUDA graph from eager code (torch.cuda.graph) replays new inputs as eager computes them.
"""
import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)
from qtorch.models.llama import build_llama

pytestmark = pytest.mark.cuda

CONFIGS = [None,  # the bf16 model: its own forward must not synchronise either
           W8A8DynamicConfig(), W8A8StaticConfig(), W8A8StaticConfig(output="int8"), Int8WeightOnlyConfig(),
           GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False), GroupWeightOnlyConfig(bits=4, group_size=32),
           GroupWeightOnlyConfig(bits=8, group_size=64), CodebookConfig(bits=4, max_iter=5),
           CodebookConfig(bits=3, group_size=64, max_iter=5)]
IDS = [repr(c) for c in CONFIGS]


def _quantize(model: nn.Module, config, calibration_input) -> nn.Module:
    if config is not None:
        qtorch.quantize_(model, config)
        if isinstance(config, W8A8StaticConfig):
            qtorch.calibrate(model, [calibration_input], progress=False)
    return model


def _llama(config):
    model = build_llama("tiny", dtype=torch.bfloat16, device="cuda")
    tokens = torch.randint(0, model.config.vocab_size, (2, 16), device="cuda")
    return _quantize(model, config, tokens)


def _without_sync(fn):
    """fn() with every host synchronisation an error (after the caller's warm-up of the same calls)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@torch.no_grad()
def test_layer_forward_has_no_host_sync(config):
    """M = 1 (decode) and M = 17, N = 120 (ragged: the int8 kernels' padded route)."""
    model = _quantize(nn.Sequential(nn.Linear(256, 120)).to("cuda", torch.bfloat16), config,
                      torch.randn(32, 256, device="cuda", dtype=torch.bfloat16))
    for m in (1, 17):
        model(torch.randn(m, 256, device="cuda", dtype=torch.bfloat16))  # warm-up: routing, Triton compilation
        x = torch.randn(m, 256, device="cuda", dtype=torch.bfloat16)
        y = _without_sync(lambda: model(x))
        assert y.shape == (m, 120) and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@torch.no_grad()
def test_llama_forward_has_no_host_sync(config):
    """Prefill (no cache) and a decode step (static KV cache) of the quantized tiny LLaMA."""
    model = _llama(config)
    vocab = model.config.vocab_size
    prefill = torch.randint(0, vocab, (2, 16), device="cuda")
    model(prefill)  # warm-up
    logits = _without_sync(lambda: model(prefill))
    model.setup_caches(2, 64)
    step, pos = torch.randint(0, vocab, (2, 1), device="cuda"), torch.tensor([5], device="cuda")
    model(step, pos)  # warm-up
    step_logits = _without_sync(lambda: model(step, pos))
    assert logits.shape == (2, 16, vocab) and step_logits.shape == (2, 1, vocab)
    assert bool(torch.isfinite(logits).all()) and bool(torch.isfinite(step_logits).all())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@torch.no_grad()
def test_llama_decode_captured_in_cuda_graph_replays_new_inputs(config):
    """torch.cuda.graph around the eager decode step; replays with fresh tokens and positions match eager."""
    model = _llama(config)
    vocab = model.config.vocab_size
    model.setup_caches(2, 64)
    static_tokens = torch.randint(0, vocab, (2, 1), device="cuda")  # (B, 1)
    static_pos = torch.tensor([3], device="cuda")  # (1,)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up off the capture stream (routing, Triton compilation, cuBLAS)
        for _ in range(2):
            model(static_tokens, static_pos)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = model(static_tokens, static_pos)
    for position in (7, 8, 30):
        tokens = torch.randint(0, vocab, (2, 1), device="cuda")
        static_tokens.copy_(tokens)
        static_pos.fill_(position)
        graph.replay()
        replayed = static_logits.clone()
        eager = model(tokens, torch.tensor([position], device="cuda"))  # rewrites the same cache entries
        torch.testing.assert_close(replayed, eager, atol=2e-2, rtol=2e-2)
        assert not torch.equal(replayed, torch.zeros_like(replayed))
