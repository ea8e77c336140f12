import os

import pytest
import torch

# The Triton launchers' autotuners keep only their first config (triton_kernels._common.autotune): the GPU tests
# check results, and tuning compiles every config of every specialization (minutes for the weight-only kernels).
# QTORCH_AUTOTUNE=1 runs them tuned.
os.environ.setdefault("QTORCH_AUTOTUNE", "0")
# Triton kernels run on the CPU through the interpreter in CI; set before triton is imported anywhere.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    # CI runs two pytest workers on two cores: one thread each avoids oversubscription on small CPU ops.
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
    # Each test compiles from a clean dynamo cache: a worker that ran many compile tests otherwise hits the
    # recompile limit of a shared code object (QuantLinear.forward, MultiheadAttention.forward) under fullgraph=True.
    torch._dynamo.reset()
