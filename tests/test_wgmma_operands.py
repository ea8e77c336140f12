"""The warpgroup kernel's A operand on the CPU: the tiled layout gives the lane of quad position t the mma.m16n8k16
A-fragment slots of its rows (qtorch/quant/layout.py), and the kernel (csrc/mixed_gemm/kernel_wgmma.cuh) either stores
them into a 128-byte-swizzled shared tile, which, unswizzled, must hold each row's weights in natural K order, or
rearranges the packed words across the quad (natural_k_words4 / natural_k_words8) so that the registers are the
natural-K A fragments, since B is x as it is."""
import torch

from qtorch.quant.layout import pack_tiled

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


def byte_perm(x: int, y: int, selector: int) -> int:
    """CUDA __byte_perm: result byte n = byte (selector nibble n) of the 8 bytes x.b0..b3, y.b0..b3."""
    pool = [(x >> (8 * i)) & 0xFF for i in range(4)] + [(y >> (8 * i)) & 0xFF for i in range(4)]
    return sum(pool[(selector >> (4 * n)) & 7] << (8 * n) for n in range(4))


def quad_gather(offers: list) -> list:
    """The kernel's quad_gather for a whole warp: offers[lane] = (Q_t[t], Q_t[t ^ 1], Q_t[t ^ 2], Q_t[t ^ 3]);
    __shfl_xor_sync(v, m) of lane l reads lane l ^ m's v."""
    from1 = [offers[lane ^ 1][1] for lane in range(32)]
    via1 = [offers[lane ^ 1][3] for lane in range(32)]
    out = []
    for lane in range(32):
        t = lane % 4
        odd, high = t & 1, t & 2
        own, from2, from3 = offers[lane][0], offers[lane ^ 2][2], via1[lane ^ 2]
        z = [from1[lane], own, from3, from2] if odd else [own, from1[lane], from2, from3]
        out.append([z[2], z[3], z[0], z[1]] if high else z)
    return out


def natural_k_words4(words: list) -> list:
    """The kernel's natural_k_words4 for a whole warp: words[lane] = the lane's 4 packed int4 words."""
    offers = []
    for lane in range(32):
        t = lane % 4
        odd, high = t & 1, t & 2
        w = words[lane]
        sel_own, sel_other = (0x7351, 0x6240) if odd else (0x6240, 0x7351)
        w_a, w_b = (w[1], w[3]) if high else (w[0], w[2])
        v_a, v_b = (w[0], w[2]) if high else (w[1], w[3])
        offers.append((byte_perm(w_a, w_b, sel_own), byte_perm(w_a, w_b, sel_other), byte_perm(v_a, v_b, sel_own),
                       byte_perm(v_a, v_b, sel_other)))
    return quad_gather(offers)


def natural_k_words8(words: list) -> list:
    """The kernel's natural_k_words8 for a whole warp: words[lane] = the lane's 4 packed int8 words."""
    offers = []
    for lane in range(32):
        t = lane % 4
        odd, high = t & 1, t & 2
        w = words[lane]
        e = [w[1], w[0], w[3], w[2]] if odd else list(w)  # e[j] = word j ^ (t % 2)
        offers.append((e[2], e[3], e[0], e[1]) if high else (e[0], e[1], e[2], e[3]))
    return quad_gather(offers)


def _lane_words(q: torch.Tensor, bits: int) -> list:
    """pack_tiled(q) of one 16-row tile -> [chunk][lane] = the lane's 4 words (unsigned)."""
    packed = pack_tiled(q, bits).view(-1, 128).tolist()  # (chunks, 128) int32
    return [[[row[4 * lane + j] & 0xFFFFFFFF for j in range(4)] for lane in range(32)] for row in packed]


def test_register_a_words_are_the_natural_k_fragments():
    """int4: after natural_k_words4, field i (half 0) and i + 4 (half 1) of word s of lane (g, t) (convert.cuh
    fragment: A register a_i of k-step s) hold row g + 8 (i % 2) at natural k = 16 s + 2 t + 8 (i // 2) + half: the
    wgmma's register-A fragment of k-step s (PTX ISA, wgmma .bf16/.f16 A in registers), matching B = x in natural
    order."""
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-8, 8, (16, 2 * CK), generator=g)  # two chunks of one 16-row tile
    for chunk, words in enumerate(_lane_words(q, 4)):
        natural = natural_k_words4(words)
        for lane in range(32):
            gq, t = lane // 4, lane % 4
            for s in range(4):
                for i in range(4):
                    for half in range(2):
                        field = (natural[lane][s] >> (4 * (i + 4 * half))) & 0xF
                        k = CK * chunk + 16 * s + 2 * t + 8 * (i // 2) + half
                        assert field - 8 == q[gq + 8 * (i % 2), k], (chunk, lane, s, i, half)


def test_register_a_words_int8_are_the_natural_k_fragments():
    """int8 (32-value layout chunks, two per 64-value stage): after natural_k_words8, fragment<T, 8> reads k-step s of
    a chunk from words 2 s (byte 0, 1: a_0 = row g; bytes 2, 3: a_1 = row g + 8) and 2 s + 1 (a_2, a_3), each byte
    pair = halves 0, 1; a_i must hold row g + 8 (i % 2) at natural k = 16 s + 2 t + 8 (i // 2) + half."""
    g = torch.Generator().manual_seed(2)
    q = torch.randint(-128, 128, (16, 4 * 32), generator=g)  # four 32-value chunks of one 16-row tile
    for chunk, words in enumerate(_lane_words(q, 8)):
        natural = natural_k_words8(words)
        for lane in range(32):
            gq, t = lane // 4, lane % 4
            for s in range(2):
                for i in range(4):
                    word = natural[lane][2 * s + i // 2]
                    for half in range(2):
                        byte = (word >> (8 * (2 * (i % 2) + half))) & 0xFF
                        k = 32 * chunk + 16 * s + 2 * t + 8 * (i // 2) + half
                        assert byte - 128 == q[gq + 8 * (i % 2), k], (chunk, lane, s, i, half)
