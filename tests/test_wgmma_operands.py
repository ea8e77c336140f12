"""The warpgroup kernel's A operand on the CPU: the tiled layout gives the lane of quad position t the mma.m16n8k16
A-fragment slots of its rows (qtorch/quant/layout.py), and the kernel (csrc/mixed_gemm/kernel_wgmma.cuh) stores them
into a 128-byte-swizzled shared tile; the tile, unswizzled, must hold each row's weights in natural K order, since B
is x as it is."""
import torch

CK = 64  # K values per chunk: one 128-byte row of the A tile


def fragments(w: torch.Tensor) -> dict:
    """w (16, CK), one warp's rows of one chunk -> {(g, t, s, i): (2,) values}: lane (g, t)'s register a_i of k-step s
    holds row g + 8 (i % 2) at natural k = 16 t + 4 s + 2 (i // 2) + h, h = 0, 1 (the layout docstring with CK = 64
    and the mma.m16n8k16 A-fragment layout)."""
    return {(g, t, s, i): w[g + 8 * (i % 2), 16 * t + 4 * s + 2 * (i // 2):][:2]
            for g in range(8) for t in range(4) for s in range(4) for i in range(4)}


def stored_tile(w: torch.Tensor) -> torch.Tensor:
    """The kernel's stores: lane (g, t) writes (a[2j][rh], a[2j][2 + rh], a[2j + 1][rh], a[2j + 1][2 + rh]) as the
    16-byte unit (2 t + j) XOR (row % 8) of row g + 8 rh (8 values per unit)."""
    a = fragments(w)
    tile = torch.full((16, CK), float("nan"), dtype=w.dtype)
    for g in range(8):
        for t in range(4):
            for rh in range(2):
                for j in range(2):
                    row = g + 8 * rh
                    unit = (2 * t + j) ^ (row % 8)
                    words = [a[g, t, 2 * j, rh], a[g, t, 2 * j, 2 + rh], a[g, t, 2 * j + 1, rh],
                             a[g, t, 2 * j + 1, 2 + rh]]
                    tile[row, 8 * unit:8 * unit + 8] = torch.cat(words)
    return tile


def unswizzle(tile: torch.Tensor) -> torch.Tensor:
    """The 128-byte swizzle read back: unit u of row r is stored at unit u XOR (r % 8)."""
    out = torch.empty_like(tile)
    for r in range(tile.shape[0]):
        for u in range(8):
            out[r, 8 * u:8 * u + 8] = tile[r, 8 * (u ^ (r % 8)):8 * (u ^ (r % 8)) + 8]
    return out


def test_stored_a_tile_is_the_weights_in_natural_k_order():
    w = torch.randn(16, CK, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tile = stored_tile(w)
    assert not tile.isnan().any()  # every value written once
    torch.testing.assert_close(unswizzle(tile), w, rtol=0, atol=0)


def test_fragments_cover_each_row_once():
    w = torch.arange(16 * CK, dtype=torch.float64).view(16, CK)
    seen = sorted(v for vals in fragments(w).values() for v in vals.tolist())
    assert seen == list(range(16 * CK))
