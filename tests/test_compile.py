"""torch.compile: a model of QuantLinear layers compiles with fullgraph=True (no graph break) and runs every batch size
from one compiled graph (dynamic batch dimension, no recompilation).

Compilation is slow on CPU (inductor's first compile in a process takes tens of seconds), so one model holds every
scheme and is compiled once.
"""
import copy

import pytest
import torch
import torch._dynamo.testing
import torch.nn as nn

import qtorch
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig,
                           W8A8DynamicConfig, W8A8StaticConfig)
from qtorch.quant import sqnr_db

EVERY_SCHEME = PerLayerConfig({
    "0": W8A8DynamicConfig(),
    "1": W8A8StaticConfig(),
    "2": W8A8StaticConfig(output="int8"),
    "3": Int8WeightOnlyConfig(),
    "4": GroupWeightOnlyConfig(4, 32, symmetric=False),
    "5": GroupWeightOnlyConfig(8, 64),
    "6": CodebookConfig(3, 32),
})


def every_scheme_model(dtype=torch.float32, device="cpu"):
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in EVERY_SCHEME.layers]).to(device=device, dtype=dtype)
    qtorch.quantize_(model, EVERY_SCHEME)
    qtorch.calibrate(model, [torch.randn(4, 5, 64, device=device, dtype=dtype)], progress=False)
    return model


@pytest.mark.slow
def test_every_scheme_compiles_fullgraph_with_a_dynamic_batch():
    torch._dynamo.reset()
    model = every_scheme_model()
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True), torch.no_grad():
        for batch in (2, 3, 9):
            x = torch.randn(batch, 5, 64)
            torch._dynamo.mark_dynamic(x, 0)
            # inductor may fuse the float epilogues differently; the integer parts are exact, so the outputs agree
            # to float32 rounding (observed: bit-identical)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    assert counter.frame_count == 1


@pytest.mark.cuda
@pytest.mark.parametrize("config", [W8A8DynamicConfig(), GroupWeightOnlyConfig(4, 128)], ids=repr)
def test_quantized_llama_compiles_with_cuda_graphs(config):
    """mode="reduce-overhead" (CUDA graphs) on a quantized LLaMA: one compile for every batch size, same logits."""
    from qtorch.models.llama import build_llama

    model = build_llama("small", dtype=torch.bfloat16, device="cuda")
    qtorch.quantize_(model, config, skip=("output",))
    eager = copy.deepcopy(model)
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    # One compiled variant at a time: two backends on the same forward code would count as a recompile.
    for compile_fn in (lambda m: torch.compile(m, mode="reduce-overhead", fullgraph=True),
                       lambda m: torch.compile(m, backend=counter, fullgraph=True)):
        torch._dynamo.reset()
        compiled = compile_fn(copy.deepcopy(model))
        with torch._dynamo.config.patch(error_on_recompile=True), torch.no_grad():
            for batch in (2, 5, 8, 2):
                tokens = torch.randint(0, 4096, (batch, 64), device="cuda")
                torch._dynamo.mark_dynamic(tokens, 0)
                ref = eager(tokens).float()
                out = compiled(tokens)
                assert out.shape == ref.shape and sqnr_db(ref, out.float()) > 30
    assert counter.frame_count == 1
