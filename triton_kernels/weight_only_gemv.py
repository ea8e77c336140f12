"""Decode path of qtorch::weight_only_linear: a CUDA-core GEMV over int32 words of the packed weight.

y[m, n] = Σ_k x[m, k] · S[n, k // g] · (q[n, k] − Z[n, k // g]) for small M (bf16/fp16 x). Each nibble/byte is turned
into a float with one shift and one LOP3 (`f = 1 + u·2^(p−23)`, u = q + 2^(b−1)), and the offsets are folded into
per-group sums of x:  Σ x (q − Z) = Σ x' f − Σ x' − (2^(b−1) + Z) Σ x,  x' = x · 2^(23−p).
The group scale is applied once per group; the whole K reduction stays inside one program (deterministic).
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import autotune, cast_rne, interpreting, small_int_to_float
from triton_kernels.splitk_reduce import reduce_splits

ONE_BITS = 0x3F800000  # bits of 1.0f


@triton.constexpr_function
def _field_pos(i, bits):
    """Bit position POS that field i of a word is moved to before it becomes a float mantissa.

    int4: nibble i (bits 4i..4i+3) goes to POS 12 or 16 so that neighbours share one shift (see _field_shift);
    int8: every byte goes to POS 8. POS >= 8 keeps u·2^(POS−23) far above the rounding error of f·x, and
    POS + BITS <= 23 keeps the field inside the mantissa."""
    if bits == 8:
        return 8
    return 12 if i in (0, 3, 5) else 16


@triton.constexpr_function
def _field_shift(i, bits):
    """Left shift (negative: right shift) that moves field i from bits·i to _field_pos(i, bits)."""
    return _field_pos(i, bits) - bits * i


@triton.jit
def _field_to_float(words, one_bits, SHIFT: tl.constexpr, POS: tl.constexpr, BITS: tl.constexpr):
    """f = 1 + u · 2^(POS − 23) for the field whose u sits at bits POS − SHIFT of each int32 word: one shift
    (shared by fields with the same SHIFT after CSE) and one LOP3 `(shifted & mask) | one_bits`. one_bits = the bits
    of 1.0f arrives as a kernel argument: as a register operand ptxas fuses AND and OR into a single LOP3, whereas
    with two immediates it emits two."""
    if SHIFT > 0:
        shifted = words << SHIFT
    elif SHIFT < 0:
        shifted = words >> -SHIFT
    else:
        shifted = words
    field = shifted & (((1 << BITS) - 1) << POS)
    return (field | one_bits).to(tl.float32, bitcast=True)


@triton.jit
def _wo_gemv_kernel(
    x_ptr,  # (M, K) bf16/fp16 activations, unit stride along K
    w_ptr,  # (N, K_WORDS) int32: the packed weight bytes viewed as words (8 nibbles or 4 bytes, k ascending)
    scale_ptr,  # (N, K / g) fp32 group scales
    zero_point_ptr,  # (N, K / g) int8 group zero points
    bias_ptr,  # (N,) bias (any float dtype) or a dummy pointer when HAS_BIAS is False
    y_ptr,  # (M, N) output in x's dtype
    N,  # output features
    K_WORDS,  # words per weight row = K * BITS / 32
    k_words_per_split,  # words of each row one program reduces (a multiple of 16); K_WORDS when not split
    stride_xm,  # elements between rows of x
    stride_wn,  # words between rows of w
    stride_sn,  # elements between rows of scale
    stride_zn,  # elements between rows of zero_point
    stride_ym,  # elements between rows of y
    stride_ys,  # elements between the split slices of y (SPLIT_OUT), else unused
    one_bits,  # 0x3F800000, the bits of 1.0f (a runtime value on purpose, see _field_to_float)
    BITS: tl.constexpr,  # 4 or 8
    HAS_BIAS: tl.constexpr,  # add bias (never with SPLIT_OUT: the reduction adds it)
    SPLIT_OUT: tl.constexpr,  # y is an fp32 (splits, M, N) buffer of partial sums, one slice per K split
    GROUP_WORDS_LOG2: tl.constexpr,  # log2(g * BITS / 32): words per group; -1 when g == K (one group per row)
    BLOCK_N: tl.constexpr,  # output features per program
    SUBS: tl.constexpr,  # 16-byte chunks (4 words) per row per iteration
):
    PER_WORD: tl.constexpr = 32 // BITS  # values per word
    CHUNK: tl.constexpr = 4  # words per 16-byte chunk; a chunk never crosses a group (g >= 4 * PER_WORD)
    OFFSET: tl.constexpr = 1 << (BITS - 1)  # u = q + OFFSET after flipping each field's sign bit
    SIGN_FLIP: tl.constexpr = -2004318072 if BITS == 4 else -2139062144  # 0x88888888 / 0x80808080 as int32
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    row = tl.program_id(2).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    n_mask = offs_n < N
    chunk_words = tl.arange(0, SUBS)[:, None] * CHUNK + tl.arange(0, CHUNK)[None, :]  # (SUBS, CHUNK) word offsets
    x_row = x_ptr + row * stride_xm
    # Tiles are (SUBS, BLOCK_N, CHUNK) with the CHUNK words of a 16-byte load in one thread. Small SUBS (the
    # configurations) spreads a warp's lanes over SUBS and N, so that an x tile (SUBS, CHUNK) has fewer elements than
    # the program has threads: Triton then loads x directly in the layout the product needs (no shared-memory
    # conversion per nibble), and every thread reuses each x value for its BLOCK_N / (lanes along N * warps) rows.
    w_rows = w_ptr + offs_n.to(tl.int64)[None, :, None] * stride_wn  # (1, BLOCK_N, 1) row starts
    k_begin = split * k_words_per_split
    k_stop = k_begin + k_words_per_split  # this program reduces words [k_begin, min(k_stop, K_WORDS))
    acc = tl.zeros((SUBS, BLOCK_N), dtype=tl.float32)  # Σ over iterations of S · Σ_chunk x (q − Z)
    word = k_begin + chunk_words  # (SUBS, CHUNK) word index along the row
    word_mask = (word < K_WORDS) & (word < k_stop)
    words = tl.load(w_rows + word[:, None, :], mask=word_mask[:, None, :] & n_mask[None, :, None], other=0)
    for w0 in range(k_begin, k_stop, SUBS * CHUNK):
        # prefetch the next tile's words into registers: two tiles of loads in flight per thread
        next_word = word + SUBS * CHUNK
        next_mask = (next_word < K_WORDS) & (next_word < k_stop)
        next_words = tl.load(w_rows + next_word[:, None, :], mask=next_mask[:, None, :] & n_mask[None, :, None],
                             other=0)
        words = words ^ SIGN_FLIP  # (SUBS, BLOCK_N, CHUNK) int32; every field now holds u = q + OFFSET
        chunk_start = w0 + tl.arange(0, SUBS) * CHUNK  # (SUBS,) first word of each chunk
        if GROUP_WORDS_LOG2 >= 0:
            group = chunk_start >> GROUP_WORDS_LOG2
        else:
            group = tl.zeros_like(chunk_start)
        chunk_mask = ((chunk_start < K_WORDS) & (chunk_start < k_stop))[:, None] & n_mask[None, :]
        scale = tl.load(scale_ptr + offs_n[None, :] * stride_sn + group[:, None], mask=chunk_mask, other=0.0)
        zero_point = tl.load(zero_point_ptr + offs_n[None, :] * stride_zn + group[:, None], mask=chunk_mask, other=0)
        dot_f = tl.zeros((SUBS, BLOCK_N, CHUNK), dtype=tl.float32)  # Σ_i x'_i f_i per word
        sum_x_scaled = tl.zeros((SUBS, CHUNK), dtype=tl.float32)  # Σ_i x'_i per word
        sum_x = tl.zeros((SUBS, CHUNK), dtype=tl.float32)  # Σ_i x_i per word
        for i in tl.static_range(PER_WORD):
            x_i = tl.load(x_row + word * PER_WORD + i, mask=word_mask, other=0.0).to(tl.float32)  # (SUBS, CHUNK)
            pos = _field_pos(i, BITS)  # constexpr
            f_i = _field_to_float(words, one_bits, _field_shift(i, BITS), pos, BITS)  # (SUBS, BLOCK_N, CHUNK) 1 + u·2^(pos−23)
            x_scaled = x_i * (1 << (23 - pos))  # exact power-of-two scaling
            dot_f += x_scaled[:, None, :] * f_i
            sum_x_scaled += x_scaled
            sum_x += x_i
        offsets = small_int_to_float(zero_point.to(tl.int32) + OFFSET)  # (SUBS, BLOCK_N) OFFSET + Z, exact
        correction = tl.sum(sum_x_scaled, axis=1)[:, None] + offsets * tl.sum(sum_x, axis=1)[:, None]
        acc += scale * (tl.sum(dot_f, axis=2) - correction)
        word = next_word
        word_mask = next_mask
        words = next_words
    y = tl.sum(acc, axis=0)  # (BLOCK_N,) fp32
    if SPLIT_OUT:
        tl.store(y_ptr + split * stride_ys + row * stride_ym + offs_n, y, mask=n_mask)
    else:
        if HAS_BIAS:
            y += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + row * stride_ym + offs_n, cast_rne(y, y_ptr.dtype.element_ty), mask=n_mask)


def _gemv_configs():
    """(BLOCK_N, SUBS, warps): SUBS * 4 < 32 * warps keeps the x tiles below one element per thread (see the kernel);
    8 rows per thread amortize the x loads. SUBS = 32 with 8 warps reads 512 contiguous bytes of a row per warp
    instruction (longer DRAM bursts than the 128 bytes of SUBS = 8); the last one is v1's tile."""
    return [triton.Config({"BLOCK_N": block_n, "SUBS": subs}, num_warps=warps)
            for block_n, subs, warps in ((64, 8, 2), (32, 8, 2), (64, 4, 1), (128, 8, 4), (64, 16, 4), (64, 32, 8),
                                         (32, 32, 8), (8, 32, 2))]


_wo_gemv_tuned = autotune(
    _gemv_configs(), ["N", "K_WORDS", "k_words_per_split", "BITS", "GROUP_WORDS_LOG2", "SPLIT_OUT"])(_wo_gemv_kernel)

# K is split over programs (each writes an fp32 slice, reduce_splits sums them in order) until about this many
# (BLOCK_N = 64) tiles run: 1024 programs of 1-4 warps keep an H200's 132 SMs streaming.
GEMV_TARGET_PROGRAMS = 1024
GEMV_MAX_SPLIT_K = 8
GEMV_MIN_SPLIT_WORDS = 64  # at least 64 words (256 bytes) of every row per program


def gemv_split_k(n: int, k_words: int) -> int:
    """Programs along K for a layer of N rows of K_WORDS words (the shape only: no guard on M)."""
    split = 1
    while (split < GEMV_MAX_SPLIT_K and triton.cdiv(n, 64) * split * 2 <= GEMV_TARGET_PROGRAMS
           and k_words >= split * 2 * GEMV_MIN_SPLIT_WORDS):
        split *= 2
    return split


def gemv(x, w_q, w_scale, w_zp, bits, group_size, bias, y):
    """Launch _wo_gemv_kernel (and its split-K reduction) writing y (M, N); x bf16/fp16 and w_q with unit stride
    along K, w_q rows 4-byte aligned, gemv_group_words_log2(K, bits, group_size) not None (qtorch.ops routes)."""
    words = w_q.view(torch.int32)  # (N, K_WORDS)
    group_words_log2 = gemv_group_words_log2(x.shape[1], bits, group_size)
    m, n, k_words = x.shape[0], words.shape[0], words.shape[1]
    split_k = gemv_split_k(n, k_words)
    k_words_per_split = triton.cdiv(triton.cdiv(k_words, split_k), 16) * 16  # multiple of 16: 16-byte loads
    out = y if split_k == 1 else torch.empty((split_k, m, n), dtype=torch.float32, device=x.device)
    has_bias = bias is not None and split_k == 1
    args = (x, words, w_scale, w_zp, bias if has_bias else w_scale, out, n, k_words, k_words_per_split, x.stride(0),
            words.stride(0), w_scale.stride(0), w_zp.stride(0), out.stride(-2), out.stride(0) if split_k > 1 else 0,
            ONE_BITS)
    meta = dict(BITS=bits, HAS_BIAS=has_bias, SPLIT_OUT=split_k > 1, GROUP_WORDS_LOG2=group_words_log2)
    if interpreting():
        torch.library.wrap_triton(_wo_gemv_kernel)[(triton.cdiv(n, 8), split_k, m)](
            *args, **meta, BLOCK_N=8, SUBS=4, num_warps=1)
    else:
        grid = lambda meta_: (triton.cdiv(n, meta_["BLOCK_N"]), split_k, m)  # noqa: E731
        torch.library.wrap_triton(_wo_gemv_tuned)[grid](*args, **meta)
    if split_k > 1:
        reduce_splits(out, bias, y)


def gemv_group_words_log2(k: int, bits: int, group_size: int):
    """GROUP_WORDS_LOG2 for the GEMV kernel (-1: one group per row), or None when its word layout does not fit."""
    per_word = 32 // bits
    if k % per_word:
        return None
    if group_size == k:
        return -1
    group_words = group_size // per_word
    if group_size % per_word or group_words < 4 or group_words & (group_words - 1):
        return None  # a 16-byte chunk of 4 words must lie inside one group, and groups must be a power of 2
    return group_words.bit_length() - 1

