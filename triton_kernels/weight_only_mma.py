"""Tiled path of qtorch::weight_only_linear: dequantize a (BLOCK_K, BLOCK_N) weight tile to exact integers q − Z in
x's dtype in registers, multiply on tensor cores with tl.dot, and scale the fp32 tile result once per group (BLOCK_K
divides g). Group sizes that are no multiple of 16 (and not K) dequantize per element.
"""
import triton
import triton.language as tl

from triton_kernels._common import cast_rne, quick_bench, small_int_to_float


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



def _mma_configs(block_m: int):
    """Tile configurations of one M bucket (BLOCK_M fixed), the rest tuned."""
    return [triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages)
            for block_n, warps in ((32, 4), (64, 4), (128, 8)) for stages in (3, 5)]


MMA_BLOCK_MS = (16, 32, 64, 128)
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
