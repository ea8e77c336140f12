"""The warpgroup kernel's operands on the CPU: x_perm (csrc/mixed_gemm/permute_x.cuh) puts each 64-value chunk of x in
the order of the tiled layout's A slots (qtorch/quant/layout.py), so the wgmma k-steps over (A slots, x_perm) give
x · wᵀ exactly."""
import torch

CK = 64


def permute_x(x: torch.Tensor) -> torch.Tensor:
    """(M, K) -> (M, K): x_perm word 8 s + 4 h + t of a chunk = x word 8 t + 2 s + h (words = pairs of values)."""
    m, k = x.shape
    words = x.view(m, k // CK, 32, 2)
    out = torch.empty_like(words)
    for s in range(4):
        for h in range(2):
            for t in range(4):
                out[:, :, 8 * s + 4 * h + t] = words[:, :, 8 * t + 2 * s + h]
    return out.view(m, k)


def a_slots(w: torch.Tensor) -> torch.Tensor:
    """w (16, K) -> (16, K/CK, 4, 16): the A operand of k-step s of each chunk, columns in slot order. Lane t's register
    a_i (rows g / g + 8 by i % 2) holds the weights of natural k = 16 t + 4 s + 2 (i // 2) + h in A column
    2 t + 8 (i // 2) + h (the layout docstring with CK = 64 and the mma.m16n8k16 A-fragment layout)."""
    rows, k = w.shape
    out = torch.empty(rows, k // CK, 4, 16, dtype=w.dtype)
    for s in range(4):
        for t in range(4):
            for hi in range(2):  # i // 2
                for h in range(2):
                    out[:, :, s, 2 * t + 8 * hi + h] = w.view(rows, k // CK, CK)[:, :, 16 * t + 4 * s + 2 * hi + h]
    return out


def test_k_steps_over_permuted_x_give_the_product():
    gen = torch.Generator().manual_seed(0)
    m, k = 5, 3 * CK
    x = torch.randn(m, k, generator=gen, dtype=torch.float64)
    w = torch.randn(16, k, generator=gen, dtype=torch.float64)
    xp = permute_x(x).view(m, k // CK, 4, 16)  # B of k-step s: x_perm[16 s : 16 s + 16] of each chunk
    y = torch.einsum("rcsj,mcsj->mr", a_slots(w), xp)
    torch.testing.assert_close(y, x @ w.t(), rtol=0, atol=1e-12)


def test_permutation_is_a_bijection_within_each_chunk():
    x = torch.arange(2 * CK, dtype=torch.float64).view(1, 2 * CK)
    xp = permute_x(x)
    for c in range(2):
        assert sorted(xp[0, c * CK:(c + 1) * CK].tolist()) == list(range(c * CK, (c + 1) * CK))
