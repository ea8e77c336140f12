"""Small measurements shared by the demo and the model benchmarks: weight storage, latency, embedding cosine."""
import statistics
import time

import torch
import torch.nn as nn

from qtorch.nn.base import QuantLinear


def linear_weight_storage(model: nn.Module) -> tuple[int, int]:
    """(bytes stored, weight count) over the model's linear layers, float or quantized, each module counted once.

    A QuantLinear counts everything it stores for its weight (payload, scales, zero points, column sums, codebooks:
    QuantLinear.weight_bytes); a float nn.Linear its weight tensor. Biases are not counted.
    """
    stored = count = 0
    for module in model.modules():
        if isinstance(module, QuantLinear):
            stored += module.weight_bytes
            count += module.in_features * module.out_features
        elif isinstance(module, nn.Linear):
            stored += module.weight.numel() * module.weight.element_size()
            count += module.weight.numel()
    return stored, count


def median_ms(fn, device: torch.device, repeats: int = 10) -> float:
    """Median wall time of fn() in milliseconds (CUDA events on a GPU, perf_counter on the CPU), after warm-up calls
    (3 on a GPU, where the first calls compile Triton kernels; 1 on the CPU)."""
    for _ in range(3 if device.type == "cuda" else 1):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cosine_stats(reference: torch.Tensor, embeddings: torch.Tensor) -> tuple[float, float]:
    """(mean, min) over rows of cos(reference_i, embeddings_i); both (B, D)."""
    if reference.shape != embeddings.shape or reference.dim() != 2:
        raise ValueError(f"embeddings: expected shape {tuple(reference.shape)} like the reference (B, D), got "
                         f"{tuple(embeddings.shape)}")
    cos = torch.nn.functional.cosine_similarity(reference.double(), embeddings.double(), dim=-1)  # (B,)
    return float(cos.mean()), float(cos.min())
