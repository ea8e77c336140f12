"""Deterministic split-K reduction shared by the weight-only kernels: y = Σ_s partial[s] (+ bias), summed in split
order and rounded once to y's dtype (no atomics, no host synchronisation: capturable in CUDA graphs)."""
import torch
import triton
import triton.language as tl

from triton_kernels._common import cast_rne


@triton.jit
def _splitk_reduce_kernel(
    partial_ptr,  # (SPLIT_K, M, N) fp32 partial sums, contiguous
    bias_ptr,  # (N,) bias (any float dtype) or a dummy pointer when HAS_BIAS is False
    y_ptr,  # (M, N) output in x's dtype, contiguous
    MN,  # M * N
    N,  # output features
    HAS_BIAS: tl.constexpr,  # add bias
    SPLIT_K: tl.constexpr,  # slices to sum, in order (deterministic)
    BLOCK: tl.constexpr,  # outputs per program
):
    """y[m, n] = Σ_s partial[s, m, n] + bias[n], summed in split order, rounded once to y's dtype."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,) flat (m, n)
    mask = offs < MN
    ptrs = partial_ptr + offs  # (BLOCK,) in slice 0
    acc = tl.load(ptrs, mask=mask, other=0.0)
    for _ in tl.static_range(1, SPLIT_K):
        ptrs += MN  # the same outputs in the next slice
        acc += tl.load(ptrs, mask=mask, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs % N, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs, cast_rne(acc, y_ptr.dtype.element_ty), mask=mask)


def reduce_splits(partial: torch.Tensor, bias, y: torch.Tensor) -> None:
    """y (M, N) = Σ_s partial[s] (SPLIT_K, M, N) fp32 + bias (N,), in split order."""
    split_k, m, n = partial.shape
    block = 1024
    torch.library.wrap_triton(_splitk_reduce_kernel)[(triton.cdiv(m * n, block),)](
        partial, bias if bias is not None else partial, y, m * n, n, HAS_BIAS=bias is not None, SPLIT_K=split_k,
        BLOCK=block)
