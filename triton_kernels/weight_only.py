"""Weight-only quantized linear layer, dequantizing in registers: the CUDA kernels of qtorch::weight_only_linear.

y (M, N) = x (M, K) · ŵᵀ + bias,  ŵ[n, k] = S[n, k // g] · (q[n, k] − Z[n, k // g]),
with q signed int4 packed two per byte ((N, K/2) uint8, low nibble = even k) or int8 ((N, K)), S (N, K/g) fp32 and
Z (N, K/g) int8 exactly as group_quantize produces them (per-channel int8: g = K). Output in x's dtype.

Two kernels, both reading the canonical layout with 16-byte loads along K (no repacking needed):
- `_wo_gemv_kernel` (decode, M <= GEMV_MAX_M, bf16/fp16): CUDA-core FMAs, one output row per program column, the
  whole K reduction inside one program (no split-K atomics, one launch, deterministic). Weights are read as int32
  words; each nibble/byte is turned into a float with one shift and one LOP3 (`f = 1 + u·2^(p−23)`, u = q + 2^(b−1)),
  and the offsets are folded into per-group sums of x:  Σ x (q − Z) = Σ x' f − Σ x' − (2^(b−1) + Z) Σ x,
  x' = x · 2^(23−p). The group scale is applied once per group.
- `_wo_mma_kernel` (M > GEMV_MAX_M, fp32 activations, any group size): tiles of (BLOCK_K, BLOCK_N) are unpacked to
  exact small integers q − Z in x's dtype, multiplied on tensor cores with tl.dot, and the fp32 tile result is scaled
  once per group (BLOCK_K divides g). Group sizes that are no multiple of 16 (and not K) dequantize per element.
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import (
    cast_rne,
    check_2d,
    check_device,
    check_float_dtype,
    interpreting,
    quick_bench,
    small_int_to_float,
)

# Largest M served by the CUDA-core GEMV kernel; larger M (and fp32 x) use the tensor-core kernel.
GEMV_MAX_M = 4
ONE_BITS = 0x3F800000  # bits of 1.0f


# ----------------------------------------------------------------------------------------------------------------
# Decode path: CUDA-core GEMV over int32 words.
# ----------------------------------------------------------------------------------------------------------------


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
    stride_xm,  # elements between rows of x
    stride_wn,  # words between rows of w
    stride_sn,  # elements between rows of scale
    stride_zn,  # elements between rows of zero_point
    stride_ym,  # elements between rows of y
    one_bits,  # 0x3F800000, the bits of 1.0f (a runtime value on purpose, see _field_to_float)
    BITS: tl.constexpr,  # 4 or 8
    HAS_BIAS: tl.constexpr,  # add bias
    GROUP_WORDS_LOG2: tl.constexpr,  # log2(g * BITS / 32): words per group; -1 when g == K (one group per row)
    BLOCK_N: tl.constexpr,  # output features per program (rows per thread = BLOCK_N / num_warps)
    SUBS: tl.constexpr,  # 16-byte chunks (4 words) per row per iteration, one per thread of a warp
):
    PER_WORD: tl.constexpr = 32 // BITS  # values per word
    CHUNK: tl.constexpr = 4  # words per 16-byte chunk; a chunk never crosses a group (g >= 4 * PER_WORD)
    OFFSET: tl.constexpr = 1 << (BITS - 1)  # u = q + OFFSET after flipping each field's sign bit
    SIGN_FLIP: tl.constexpr = -2004318072 if BITS == 4 else -2139062144  # 0x88888888 / 0x80808080 as int32
    pid_n = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    n_mask = offs_n < N
    chunk_words = tl.arange(0, SUBS)[:, None] * CHUNK + tl.arange(0, CHUNK)[None, :]  # (SUBS, CHUNK) word offsets
    x_row = x_ptr + row * stride_xm
    # Tiles are (SUBS, BLOCK_N, CHUNK): with SUBS first, Triton's coalescing puts the 32 threads of a warp along
    # SUBS (consecutive 16-byte chunks of a row) and the warps along N, so each thread keeps BLOCK_N / num_warps
    # rows and reuses every x value it loads for all of them.
    w_rows = w_ptr + offs_n.to(tl.int64)[None, :, None] * stride_wn  # (1, BLOCK_N, 1) row starts
    acc = tl.zeros((SUBS, BLOCK_N), dtype=tl.float32)  # Σ over iterations of S · Σ_chunk x (q − Z)
    for w0 in range(0, K_WORDS, SUBS * CHUNK):
        word = w0 + chunk_words  # (SUBS, CHUNK) word index along the row
        word_mask = word < K_WORDS
        words = tl.load(w_rows + word[:, None, :], mask=word_mask[:, None, :] & n_mask[None, :, None], other=0)
        words = words ^ SIGN_FLIP  # (SUBS, BLOCK_N, CHUNK) int32; every field now holds u = q + OFFSET
        chunk_start = w0 + tl.arange(0, SUBS) * CHUNK  # (SUBS,) first word of each chunk
        if GROUP_WORDS_LOG2 >= 0:
            group = chunk_start >> GROUP_WORDS_LOG2
        else:
            group = tl.zeros_like(chunk_start)
        chunk_mask = (chunk_start < K_WORDS)[:, None] & n_mask[None, :]
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
    y = tl.sum(acc, axis=0)  # (BLOCK_N,) fp32
    if HAS_BIAS:
        y += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_ym + offs_n, cast_rne(y, y_ptr.dtype.element_ty), mask=n_mask)


# ----------------------------------------------------------------------------------------------------------------
# Tiled path: dequantize a (BLOCK_K, BLOCK_N) tile to exact integers in x's dtype, then tl.dot.
# ----------------------------------------------------------------------------------------------------------------


@triton.jit
def _wo_mma_kernel(
    x_ptr,  # (M, K) bf16/fp16/fp32 activations, unit stride along K
    w_ptr,  # (N, K/2) uint8 packed int4, or (N, K) int8; unit stride along K
    scale_ptr,  # (N, K / group_size) fp32 group scales
    zero_point_ptr,  # (N, K / group_size) int8 group zero points
    bias_ptr,  # (N,) bias (any float dtype) or a dummy pointer when HAS_BIAS is False
    y_ptr,  # (M, N) output in x's dtype
    M,  # rows of x
    N,  # output features
    K,  # input features
    group_size,  # g (divides K)
    stride_xm,  # elements between rows of x
    stride_wn,  # bytes between rows of w
    stride_sn,  # elements between rows of scale
    stride_zn,  # elements between rows of zero_point
    stride_ym,  # elements between rows of y
    BITS: tl.constexpr,  # 4 or 8
    HAS_BIAS: tl.constexpr,  # add bias
    SCALE_PER_TILE: tl.constexpr,  # True: a K tile never crosses a group (BLOCK_K divides g, or g == K)
    DOT_DTYPE: tl.constexpr,  # operand dtype of tl.dot: x's dtype (fp32 for bf16 x in the interpreter, see launcher)
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 operands (no TF32), "tf32" otherwise (ignored for 16-bit inputs)
    BLOCK_M: tl.constexpr,  # rows of x per program (>= 16 for tl.dot)
    BLOCK_N: tl.constexpr,  # output features per program
    BLOCK_K: tl.constexpr,  # k per iteration
):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m  # programs sharing a weight tile run back to back (the tile stays in L2)
    pid_n = pid // num_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    offs_k = tl.arange(0, BLOCK_K)  # (BLOCK_K,)
    m_mask = offs_m < M
    n_mask = offs_n < N
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm  # (BLOCK_M, 1)
    w_cols = w_ptr + offs_n.to(tl.int64)[None, :] * stride_wn  # (1, BLOCK_N): row n of w is column n of ŵᵀ
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k  # (BLOCK_K,)
        k_mask = k < K
        x = tl.load(x_rows + k[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0).to(DOT_DTYPE)  # (BM, BK)
        if BITS == 4:
            kb = k0 // 2 + tl.arange(0, BLOCK_K // 2)  # (BLOCK_K/2,) byte columns
            packed = tl.load(w_cols + kb[:, None], mask=(kb < K // 2)[:, None] & n_mask[None, :], other=0)
            packed = packed.to(tl.int32)  # (BLOCK_K/2, BLOCK_N), zero-extended bytes
            low = (packed << 28) >> 28  # sign-extended nibble of k = 2j
            high = (packed << 24) >> 28  # sign-extended nibble of k = 2j + 1
            q = tl.reshape(tl.permute(tl.join(low, high), (0, 2, 1)), (BLOCK_K, BLOCK_N))  # (BLOCK_K, BLOCK_N) int32
        else:
            q = tl.load(w_cols + k[:, None], mask=k_mask[:, None] & n_mask[None, :], other=0).to(tl.int32)
        if SCALE_PER_TILE:
            group = k0 // group_size
            scale = tl.load(scale_ptr + offs_n * stride_sn + group, mask=n_mask, other=0.0)  # (BLOCK_N,)
            zero_point = tl.load(zero_point_ptr + offs_n * stride_zn + group, mask=n_mask, other=0).to(tl.int32)
            w = small_int_to_float(q - zero_point[None, :]).to(DOT_DTYPE)  # exact: |q − Z| <= 255
            acc += tl.dot(x, w, input_precision=DOT_PRECISION) * scale[None, :]
        else:
            group = (k // group_size)[:, None]  # (BLOCK_K, 1)
            sz_mask = k_mask[:, None] & n_mask[None, :]
            scale = tl.load(scale_ptr + offs_n[None, :] * stride_sn + group, mask=sz_mask, other=0.0)
            zero_point = tl.load(zero_point_ptr + offs_n[None, :] * stride_zn + group, mask=sz_mask, other=0)
            w = (scale * small_int_to_float(q - zero_point.to(tl.int32))).to(DOT_DTYPE)  # (BLOCK_K, BLOCK_N)
            acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, cast_rne(acc, y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


# ----------------------------------------------------------------------------------------------------------------
# Configurations and launcher.
# ----------------------------------------------------------------------------------------------------------------


def _gemv_configs():
    """Rows per thread BLOCK_N / num_warps of 4 or 8 amortize the x loads; SUBS * 16 bytes per row per iteration."""
    return [
        triton.Config({"BLOCK_N": block_n, "SUBS": subs}, num_warps=warps)
        for block_n, warps in ((8, 1), (8, 2), (16, 2), (16, 4), (32, 4))
        for subs in (16, 32)
    ]


def _mma_configs(block_m: int):
    """Tile configurations of one M bucket (BLOCK_M fixed), the rest tuned."""
    return [triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages)
            for block_n, warps in ((32, 4), (64, 4), (128, 8)) for stages in (3, 5)]


MMA_BLOCK_MS = (16, 32, 64, 128)

_wo_gemv_tuned = triton.autotune(
    _gemv_configs(), key=["N", "K_WORDS", "BITS", "GROUP_WORDS_LOG2"], do_bench=quick_bench)(_wo_gemv_kernel)
# One autotuner per M bucket, keyed on the layer's shape but not on M: a new batch size tunes nothing, and no
# prune_configs_by (torch.library.wrap_triton rebuilds such autotuners, and so re-tunes, on every eager call).
_MMA_KEY = ["N", "K", "BITS", "BLOCK_K", "SCALE_PER_TILE", "DOT_DTYPE"]
_wo_mma_tuned = {
    block_m: triton.autotune(_mma_configs(block_m), key=_MMA_KEY, do_bench=quick_bench)(_wo_mma_kernel)
    for block_m in MMA_BLOCK_MS
}
# A symbolic M (torch.compile with a dynamic batch) must not pick a bucket: that would guard, and recompile, on M.
_wo_mma_any_m = triton.autotune([c for b in MMA_BLOCK_MS for c in _mma_configs(b)], key=_MMA_KEY,
                                do_bench=quick_bench)(_wo_mma_kernel)


def _mma_kernel_for(m):
    """The autotuner of M's bucket; the one over every bucket when M is symbolic."""
    if not isinstance(m, int):
        return _wo_mma_any_m
    for block_m in MMA_BLOCK_MS:
        if m <= block_m:
            return _wo_mma_tuned[block_m]
    return _wo_mma_tuned[MMA_BLOCK_MS[-1]]


def _check_inputs(x, w_q, w_scale, w_zp, bits, group_size, bias):
    """Metadata-only checks (no device synchronisation); returns (M, N, K)."""
    check_2d("x", x)
    check_float_dtype("x", x)
    check_device("x", x)
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    expected_q = torch.uint8 if bits == 4 else torch.int8
    if w_q.dtype != expected_q or w_q.dim() != 2:
        raise TypeError(f"w_q must be a 2-D {expected_q} tensor for bits={bits}, got {w_q.dtype} {tuple(w_q.shape)}")
    m, k = x.shape
    n = w_q.shape[0]
    if w_q.shape[1] * 8 // bits != k:
        raise ValueError(f"w_q has {w_q.shape[1]} columns, expected K*bits/8 = {k * bits // 8} for x with K={k}")
    if group_size <= 0 or k % group_size:
        raise ValueError(f"group_size must be a positive divisor of K={k}, got {group_size}")
    groups = (n, k // group_size)
    if tuple(w_scale.shape) != groups or w_scale.dtype != torch.float32:
        raise ValueError(f"w_scale must be float32 of shape {groups}, got {w_scale.dtype} {tuple(w_scale.shape)}")
    if tuple(w_zp.shape) != groups or w_zp.dtype != torch.int8:
        raise ValueError(f"w_zp must be int8 of shape {groups}, got {w_zp.dtype} {tuple(w_zp.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")
    for name, t in (("w_q", w_q), ("w_scale", w_scale), ("w_zp", w_zp), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on {x.device} like x, got {t.device}")
    return m, n, k


def _gemv_group_words_log2(k: int, bits: int, group_size: int):
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


def weight_only_linear(x, w_q, w_scale, w_zp, bits: int, group_size: int, bias=None, *, path: str = "auto"):
    """y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias in x's dtype, dequantizing the int4/int8 weight in registers.

    w_q, w_scale, w_zp as produced by group_quantize (per-channel int8: group_size = K). `path` ("auto", "gemv",
    "mma") forces a kernel for benchmarks and tests; "auto" picks the GEMV kernel for M <= GEMV_MAX_M.
    """
    m, n, k = _check_inputs(x, w_q, w_scale, w_zp, bits, group_size, bias)
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return y
    if k == 0:
        return y.zero_() if bias is None else y.copy_(bias.expand(m, n))
    if x.stride(1) != 1:
        x = x.contiguous()
    if w_q.stride(1) != 1:
        w_q = w_q.contiguous()
    has_bias = bias is not None
    bias_arg = bias if has_bias else w_scale  # never read when HAS_BIAS is False
    group_words_log2 = _gemv_group_words_log2(k, bits, group_size)
    # The int32 view needs 4-byte aligned rows (metadata only: this also runs on fake tensors under torch.compile).
    gemv_ok = (group_words_log2 is not None and x.dtype != torch.float32 and w_q.storage_offset() % 4 == 0
               and w_q.stride(0) % 4 == 0)
    use_gemv = path == "gemv" or (path == "auto" and isinstance(m, int) and m <= GEMV_MAX_M)
    if path == "gemv" and not gemv_ok:
        raise ValueError("path='gemv' needs bf16/fp16 x, K a multiple of 32/bits, 4-byte aligned rows, and a "
                         "power-of-2 group size of at least 128/bits values (or group_size == K)")
    if use_gemv and gemv_ok:
        words = w_q.view(torch.int32)  # (N, K*bits/32) int32
        args = (x, words, w_scale, w_zp, bias_arg, y, n, words.shape[1], x.stride(0), words.stride(0),
                w_scale.stride(0), w_zp.stride(0), y.stride(0), ONE_BITS)
        meta = dict(BITS=bits, HAS_BIAS=has_bias, GROUP_WORDS_LOG2=group_words_log2)
        if interpreting():
            torch.library.wrap_triton(_wo_gemv_kernel)[(triton.cdiv(n, 8), m)](
                *args, **meta, BLOCK_N=8, SUBS=4, num_warps=1)
        else:
            grid = lambda meta_: (triton.cdiv(n, meta_["BLOCK_N"]), m)  # noqa: E731
            torch.library.wrap_triton(_wo_gemv_tuned)[grid](*args, **meta)
        return y

    # One group per K tile when BLOCK_K divides g (or g == K); other group sizes dequantize per element.
    if group_size == k or group_size % 128 == 0:
        block_k = 128
    elif group_size in (16, 32, 64):
        block_k = group_size
    else:
        block_k = None
    scale_per_tile = block_k is not None
    block_k = block_k or 64
    # The interpreter's tl.dot multiplies the raw bits of bf16 operands, so there bf16 x is multiplied in fp32
    # (identical products: bf16 values and |q − Z| <= 255 are exact in fp32; the GPU tests cover the bf16 dot).
    dot_dtype = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}[x.dtype]
    if interpreting() and x.dtype == torch.bfloat16:
        dot_dtype = tl.float32
    precision = "ieee" if dot_dtype == tl.float32 else "tf32"
    args = (x, w_q, w_scale, w_zp, bias_arg, y, m, n, k, group_size, x.stride(0), w_q.stride(0),
            w_scale.stride(0), w_zp.stride(0), y.stride(0))
    meta = dict(BITS=bits, HAS_BIAS=has_bias, SCALE_PER_TILE=scale_per_tile, DOT_DTYPE=dot_dtype,
                DOT_PRECISION=precision, BLOCK_K=block_k)
    if interpreting():
        block_m = 16
        torch.library.wrap_triton(_wo_mma_kernel)[(triton.cdiv(m, block_m) * triton.cdiv(n, 32),)](
            *args, **meta, BLOCK_M=block_m, BLOCK_N=32, num_warps=1)
    else:
        grid = lambda meta_: (triton.cdiv(m, meta_["BLOCK_M"]) * triton.cdiv(n, meta_["BLOCK_N"]),)  # noqa: E731
        torch.library.wrap_triton(_mma_kernel_for(m))[grid](*args, **meta)
    return y
