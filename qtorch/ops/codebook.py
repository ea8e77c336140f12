"""qtorch::codebook_linear — weight-only linear with K-means codebook weights.

  ŵ[n, k] = C[n, k // g, i[n, k]],   y = x · ŵᵀ + bias
indices i packed along K in a 2-, 4- or 8-bit container (`bits`), codebook C (N, K/g, E) fp32 with E ≤ 2^bits
entries (one codebook per output channel when g = K). No fused CUDA kernel: on CUDA the weight is rebuilt by a
gather and multiplied with F.linear (said once).
"""
import torch
import torch.nn.functional as F

from qtorch.ops import routing
from qtorch.ops._checks import ACT_DTYPES, check_device, check_matrix, check_vector
from qtorch.ops._registry import always, reference_backend, warn_once
from qtorch.quant.packing import unpack

SCHEMA = "(Tensor x, Tensor indices, Tensor codebook, int bits, int group_size, Tensor? bias) -> Tensor"


def check_codebook_linear(x, indices, codebook, bits, group_size, bias) -> None:
    """The contract: indices (N, K·bits/8) uint8 in a 2/4/8-bit container, x (M, K), codebook (N, K/g, E) fp32
    with 2 ≤ E ≤ 2^bits, bias (N,), all on x's device."""
    if bits not in (2, 4, 8):
        raise ValueError(f"bits: expected an index container of 2, 4 or 8 bits, got {bits}")
    check_matrix("indices", indices, (torch.uint8,))
    k = indices.shape[1] * 8 // bits
    check_matrix("x", x, ACT_DTYPES, cols=k)
    check_device("indices", indices, x)
    if group_size <= 0 or k % group_size:
        raise ValueError(f"group_size: expected a positive divisor of K={k}, got {group_size}")
    expected = (indices.shape[0], k // group_size)
    if codebook.dim() != 3 or tuple(codebook.shape[:2]) != expected or not 2 <= codebook.shape[2] <= 1 << bits:
        raise ValueError(f"codebook: expected shape {expected + ('E',)} with 2 ≤ E ≤ {1 << bits}, got "
                         f"{tuple(codebook.shape)}")
    if codebook.dtype != torch.float32:
        raise TypeError(f"codebook: expected float32, got {codebook.dtype}")
    check_device("codebook", codebook, x)
    check_vector("bias", bias, indices.shape[0], ACT_DTYPES, x)


def codebook_weight(indices, codebook, bits, group_size) -> torch.Tensor:
    """Rebuild ŵ (N, K) fp32 from packed indices and per-group codebooks."""
    idx = unpack(indices, bits, signed=False).long()  # (N, K)
    n, k = idx.shape
    grouped = idx.reshape(n, k // group_size, group_size)  # (N, K/g, g)
    return torch.gather(codebook, 2, grouped).reshape(n, k)


def codebook_linear_reference(x, indices, codebook, bits, group_size, bias):
    w = codebook_weight(indices, codebook, bits, group_size)
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def gather_linear(x, indices, codebook, bits, group_size, bias):
    warn_once("codebook_linear", "qtorch: codebook_linear has no fused CUDA kernel; it rebuilds the weight in the "
                                 "activation dtype and calls F.linear")
    w = codebook_weight(indices, codebook, bits, group_size).to(x.dtype)
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


routing.register_backends("codebook_linear", [
    reference_backend(codebook_linear_reference),
    routing.Backend("gather_linear", ("cuda",), always, gather_linear),
])


@torch.library.custom_op("qtorch::codebook_linear", mutates_args=(), schema=SCHEMA)
def codebook_linear(*args):
    """y (M, N) = x · ŵᵀ + bias, ŵ[n, k] = C[n, k // g, i[n, k]], in x's dtype."""
    check_codebook_linear(*args)
    return routing.select("codebook_linear", device=args[0].device.type).run(*args)


@codebook_linear.register_fake
def _(x, indices, codebook, bits, group_size, bias):
    check_codebook_linear(x, indices, codebook, bits, group_size, bias)
    return x.new_empty((x.shape[0], indices.shape[0]))
