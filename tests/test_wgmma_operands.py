"""The warpgroup kernel's A operand on the CPU: the tiled layout gives the lane of quad position t the mma.m16n8k16
A-fragment slots of its rows (qtorch/quant/layout.py), and the kernel (csrc/mixed_gemm/kernel_wgmma.cuh) rearranges
the packed words across the quad (natural_k_words4 / natural_k_words8) so that the registers are the natural-K A
fragments, since B is x as it is."""
import pytest
import torch

from qtorch.quant.layout import pack_tiled

CK = 64  # K values per int4 layout chunk (one warpgroup-kernel stage)


def fragments(w: torch.Tensor) -> dict:
    """w (16, CK), one warp's rows of one chunk -> {(g, t, s, i): (2,) values}: lane (g, t)'s register a_i of k-step s
    holds row g + 8 (i % 2) at natural k = 16 t + 4 s + 2 (i // 2) + h, h = 0, 1 (the layout docstring with CK = 64
    and the mma.m16n8k16 A-fragment layout)."""
    return {(g, t, s, i): w[g + 8 * (i % 2), 16 * t + 4 * s + 2 * (i // 2):][:2]
            for g in range(8) for t in range(4) for s in range(4) for i in range(4)}


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


def offer4(w: list, t: int) -> tuple:
    """The kernel's natural_k_words4 up to quad_gather: lane t's int4 parts (Q_t[t], Q_t[t^1], Q_t[t^2], Q_t[t^3])."""
    odd, high = t & 1, t & 2
    sel_own, sel_other = (0x7351, 0x6240) if odd else (0x6240, 0x7351)
    w_a, w_b = (w[1], w[3]) if high else (w[0], w[2])
    v_a, v_b = (w[0], w[2]) if high else (w[1], w[3])
    return (byte_perm(w_a, w_b, sel_own), byte_perm(w_a, w_b, sel_other), byte_perm(v_a, v_b, sel_own),
            byte_perm(v_a, v_b, sel_other))


def offer8(w: list, t: int) -> tuple:
    """The kernel's natural_k_words8 up to quad_gather: lane t's int8 words t, t ^ 1, t ^ 2, t ^ 3."""
    e = [w[1], w[0], w[3], w[2]] if t & 1 else list(w)  # e[j] = word j ^ (t % 2)
    return (e[2], e[3], e[0], e[1]) if t & 2 else (e[0], e[1], e[2], e[3])


def natural_k_words(words: list, offer) -> list:
    """natural_k_words4 / 8 for a whole warp: words[lane] = the lane's 4 packed words."""
    return quad_gather([offer(words[lane], lane % 4) for lane in range(32)])


def _lane_words(q: torch.Tensor, bits: int) -> list:
    """pack_tiled(q) of one 16-row tile -> [chunk][lane] = the lane's 4 words (unsigned)."""
    packed = pack_tiled(q, bits).view(-1, 128).tolist()  # (chunks, 128) int32
    return [[[row[4 * lane + j] & 0xFFFFFFFF for j in range(4)] for lane in range(32)] for row in packed]


def field4(words: list, s: int, i: int, half: int) -> int:
    """convert.cuh fragment<T, 4>: register a_i of k-step s, half `half` = field i + 4 half of word s."""
    return (words[s] >> (4 * (i + 4 * half))) & 0xF


def field8(words: list, s: int, i: int, half: int) -> int:
    """fragment<T, 8>: a_0, a_1 = bytes (0, 1), (2, 3) of word 2 s; a_2, a_3 the same bytes of word 2 s + 1."""
    return (words[2 * s + i // 2] >> (8 * (2 * (i % 2) + half))) & 0xFF


@pytest.mark.parametrize("bits,offer,field", [(4, offer4, field4), (8, offer8, field8)])
def test_register_a_words_are_the_natural_k_fragments(bits, offer, field):
    """After natural_k_words4 / 8, the fragment the kernel reads as register a_i of k-step s of lane (g, t) holds row
    g + 8 (i % 2) at natural k = 16 s + 2 t + 8 (i // 2) + half: the wgmma's register-A fragment of k-step s (PTX
    ISA, wgmma .bf16/.f16 A in registers), matching B = x in natural order. int8's 32-value layout chunks have 2
    k-steps each (two per 64-value stage)."""
    ck, offset = 256 // bits, 1 << (bits - 1)
    q = torch.randint(-offset, offset, (16, 4 * ck), generator=torch.Generator().manual_seed(bits))  # 4 chunks
    for chunk, words in enumerate(_lane_words(q, bits)):
        natural = natural_k_words(words, offer)
        for lane in range(32):
            gq, t = lane // 4, lane % 4
            for s in range(ck // 16):
                for i in range(4):
                    for half in range(2):
                        k = ck * chunk + 16 * s + 2 * t + 8 * (i // 2) + half
                        value = field(natural[lane], s, i, half) - offset
                        assert value == q[gq + 8 * (i % 2), k], (chunk, lane, s, i, half)
