"""Group-wise weight quantization along K and its inverse: the CUDA kernels of qtorch::group_quantize / _dequantize.

Per group of g consecutive weights r of a row (fp32, IEEE division, rint = round half to even; docs/DESIGN.md):
  symmetric:  S = max|r| / qmax (1 if 0), Z = 0,           q = clamp(rint(r / S), qmin, qmax)
  asymmetric: S = (max(max r, 0) - min(min r, 0)) / (qmax - qmin) (1 if 0),
              Z = clamp(rint(qmin - min(min r, 0) / S), qmin, qmax),  q = clamp(rint(r / S) + Z, qmin, qmax)
with qmin, qmax = -2^(b-1), 2^(b-1) - 1. int4 is packed two per byte: byte j = (q[2j] & 0xF) | (q[2j+1] & 0xF) << 4.
Dequantization: r̂ = S * (q - Z) in fp32, cast to the requested dtype.

Groups are contiguous runs of g elements of a row, so a program handles BLOCK_G whole groups: one pass, W read once,
q + scales + zero points written once (memory bound).
"""
import torch
import triton
import triton.language as tl

from triton_kernels._common import (
    autotune,
    cast_rne,
    interpreting,
    quantize_rounded,
    round_half_even,
    small_int_to_float,
)

# Group sizes of the tiled kernels (a power of 2: tl.arange over one group); other divisors of K take the flat
# dequantization kernel, or the PyTorch formula for quantization (qtorch.ops.group routes).
TILED_GROUP_SIZES = (16, 32, 64, 128, 256)


def _configs():
    """Autotune space: elements per program (several 16-byte accesses in flight per thread) x warps."""
    return [
        triton.Config({"ELEMS": elems}, num_warps=warps)
        for elems in (2048, 4096, 8192)
        for warps in (4, 8)
    ]


@triton.jit
def _group_quantize_kernel(
    w_ptr,  # (N, K) bf16/fp16/fp32 weights, contiguous: group i is elements [i*GROUP, (i+1)*GROUP)
    q_ptr,  # int8 (N, K) when BITS == 8, uint8 (N, K/2) packed when BITS == 4; contiguous
    scale_ptr,  # (N, K/GROUP) fp32 out, contiguous
    zero_point_ptr,  # (N, K/GROUP) int8 out, contiguous (zeros when SYMMETRIC)
    num_groups,  # N * K / GROUP
    GROUP: tl.constexpr,  # group size g along K: one of TILED_GROUP_SIZES
    BITS: tl.constexpr,  # 4 or 8
    SYMMETRIC: tl.constexpr,  # True: Z = 0 and S = max|r| / qmax
    ELEMS: tl.constexpr,  # elements per program (multiple of GROUP): BLOCK_G = ELEMS // GROUP groups
):
    BLOCK_G: tl.constexpr = ELEMS // GROUP
    QMIN: tl.constexpr = -(1 << (BITS - 1))
    QMAX: tl.constexpr = (1 << (BITS - 1)) - 1
    groups = tl.program_id(0).to(tl.int64) * BLOCK_G + tl.arange(0, BLOCK_G)  # (BLOCK_G,) flat group ids
    group_mask = groups < num_groups
    offs = tl.arange(0, GROUP)  # (GROUP,)
    r = tl.load(w_ptr + groups[:, None] * GROUP + offs[None, :], mask=group_mask[:, None], other=0.0).to(tl.float32)  # (BLOCK_G, GROUP) fp32

    if SYMMETRIC:
        scale = tl.math.div_rn(tl.max(tl.abs(r), axis=1), QMAX * 1.0)  # (BLOCK_G,)
        scale = tl.where(scale == 0.0, 1.0, scale)
        zero_point = tl.zeros_like(scale)
    else:
        r_min = tl.minimum(tl.min(r, axis=1), 0.0)
        r_max = tl.maximum(tl.max(r, axis=1), 0.0)
        scale = tl.math.div_rn(r_max - r_min, (QMAX - QMIN) * 1.0)
        scale = tl.where(scale == 0.0, 1.0, scale)
        zero_point = round_half_even(QMIN - tl.math.div_rn(r_min, scale))
        zero_point = tl.minimum(tl.maximum(zero_point, QMIN * 1.0), QMAX * 1.0)
    q = quantize_rounded(tl.math.div_rn(r, scale[:, None]), zero_point[:, None], QMIN, QMAX)  # (BLOCK_G, GROUP) i32

    if BITS == 4:
        even, odd = tl.split(tl.reshape(q, (BLOCK_G, GROUP // 2, 2)))  # (BLOCK_G, GROUP/2) each: k = 2j, 2j+1
        packed = ((even & 0xF) | ((odd & 0xF) << 4)).to(tl.uint8)
        q_offs = groups[:, None] * (GROUP // 2) + tl.arange(0, GROUP // 2)[None, :]
        tl.store(q_ptr + q_offs, packed, mask=group_mask[:, None])
    else:
        tl.store(q_ptr + groups[:, None] * GROUP + offs[None, :], q.to(tl.int8), mask=group_mask[:, None])
    tl.store(scale_ptr + groups, scale, mask=group_mask)
    tl.store(zero_point_ptr + groups, zero_point.to(tl.int8), mask=group_mask)


@triton.jit
def _group_dequantize_kernel(
    q_ptr,  # int8 (N, K) when BITS == 8, uint8 (N, K/2) packed when BITS == 4; contiguous
    scale_ptr,  # (N, K/GROUP) fp32, contiguous
    zero_point_ptr,  # (N, K/GROUP) int8, contiguous
    w_ptr,  # (N, K) out in the requested float dtype, contiguous
    num_groups,  # N * K / GROUP
    GROUP: tl.constexpr,  # group size g along K
    BITS: tl.constexpr,  # 4 or 8
    ELEMS: tl.constexpr,  # elements per program (multiple of GROUP)
):
    BLOCK_G: tl.constexpr = ELEMS // GROUP
    groups = tl.program_id(0).to(tl.int64) * BLOCK_G + tl.arange(0, BLOCK_G)  # (BLOCK_G,)
    group_mask = groups < num_groups
    if BITS == 4:
        q_offs = groups[:, None] * (GROUP // 2) + tl.arange(0, GROUP // 2)[None, :]
        packed = tl.load(q_ptr + q_offs, mask=group_mask[:, None], other=0).to(tl.int32)  # (BLOCK_G, GROUP/2)
        even = (packed << 28) >> 28  # sign-extended low nibble
        odd = (packed << 24) >> 28  # sign-extended high nibble
        q = tl.reshape(tl.join(even, odd), (BLOCK_G, GROUP))  # (BLOCK_G, GROUP) int32, k order restored
    else:
        q_offs = groups[:, None] * GROUP + tl.arange(0, GROUP)[None, :]
        q = tl.load(q_ptr + q_offs, mask=group_mask[:, None], other=0).to(tl.int32)
    scale = tl.load(scale_ptr + groups, mask=group_mask, other=1.0)  # (BLOCK_G,) fp32
    zero_point = tl.load(zero_point_ptr + groups, mask=group_mask, other=0).to(tl.int32)
    r = scale[:, None] * small_int_to_float(q - zero_point[:, None])  # (BLOCK_G, GROUP) fp32, exact q - Z
    w_offs = groups[:, None] * GROUP + tl.arange(0, GROUP)[None, :]
    tl.store(w_ptr + w_offs, cast_rne(r, w_ptr.dtype.element_ty), mask=group_mask[:, None])


@triton.jit
def _dequantize_any_group_kernel(
    q_ptr,  # int8 (N, K) when BITS == 8, uint8 (N, K/2) packed when BITS == 4; contiguous
    scale_ptr,  # (N, K/g) fp32, contiguous
    zero_point_ptr,  # (N, K/g) int8, contiguous
    w_ptr,  # (N, K) out in the requested float dtype, contiguous
    numel,  # N * K
    group_size,  # g: any divisor of K (per channel: g = K), so flat element i belongs to group i // g
    BITS: tl.constexpr,  # 4 or 8
    BLOCK: tl.constexpr,  # elements per program
):
    """ŵ = S (q − Z) for group sizes the tiled kernel does not take (not a power of 2 in 32..256): flat indexing."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,) flat (n, k)
    mask = offs < numel
    if BITS == 4:
        packed = tl.load(q_ptr + offs // 2, mask=mask, other=0).to(tl.int32)  # (BLOCK,) the byte holding element i
        q = tl.where(offs % 2 == 0, (packed << 28) >> 28, (packed << 24) >> 28)  # sign-extended nibble
    else:
        q = tl.load(q_ptr + offs, mask=mask, other=0).to(tl.int32)
    groups = offs // group_size  # (BLOCK,)
    scale = tl.load(scale_ptr + groups, mask=mask, other=1.0)
    zero_point = tl.load(zero_point_ptr + groups, mask=mask, other=0).to(tl.int32)
    r = scale * small_int_to_float(q - zero_point)  # (BLOCK,) fp32, exact q - Z
    tl.store(w_ptr + offs, cast_rne(r, w_ptr.dtype.element_ty), mask=mask)


_group_quantize_tuned = autotune(_configs(), ["GROUP", "BITS", "SYMMETRIC"])(_group_quantize_kernel)
_group_dequantize_tuned = autotune(_configs(), ["GROUP", "BITS"])(_group_dequantize_kernel)


def _launch(kernel, tuned, grid_elems, *args, **meta):
    """Autotuned launch on the GPU; one small fixed config in the interpreter (no timing there)."""
    if interpreting():
        torch.library.wrap_triton(kernel)[(triton.cdiv(grid_elems, 256),)](*args, ELEMS=256, num_warps=1, **meta)
    else:
        grid = lambda meta_: (triton.cdiv(grid_elems, meta_["ELEMS"]),)  # noqa: E731
        torch.library.wrap_triton(tuned)[grid](*args, **meta)


def group_quantize(w: torch.Tensor, bits: int, group_size: int, symmetric: bool):
    """Quantize w (N, K) contiguous per group of group_size (in TILED_GROUP_SIZES) along K -> (q, scale, zero_point).

    q: (N, K) int8 (bits 8) or (N, K/2) uint8 two nibbles per byte (bits 4); scale (N, K/g) fp32;
    zero_point (N, K/g) int8 (zeros when symmetric). r ≈ S (q - Z); bit-exact with the PyTorch reference.
    """
    n, k = w.shape
    num_groups = n * k // group_size
    q = torch.empty((n, k // 2) if bits == 4 else (n, k), dtype=torch.uint8 if bits == 4 else torch.int8, device=w.device)
    scale = torch.empty((n, k // group_size), dtype=torch.float32, device=w.device)
    zero_point = torch.empty((n, k // group_size), dtype=torch.int8, device=w.device)
    if num_groups == 0:
        return q, scale, zero_point
    _launch(
        _group_quantize_kernel, _group_quantize_tuned, n * k,
        w, q, scale, zero_point, num_groups,
        GROUP=group_size, BITS=bits, SYMMETRIC=bool(symmetric),
    )
    return q, scale, zero_point


def _dequantized_empty(q, bits, dtype):
    k = q.shape[1] * 8 // bits
    return torch.empty((q.shape[0], k), dtype=dtype, device=q.device), k


def group_dequantize_tiled(q, scale, zero_point, bits: int, group_size: int, dtype: torch.dtype):
    """w = S * (q - Z) in fp32 cast to dtype, (N, K), for group_size in TILED_GROUP_SIZES; q, scale, zero_point
    contiguous as group_quantize writes them."""
    w, k = _dequantized_empty(q, bits, dtype)
    num_groups = q.shape[0] * k // group_size
    if num_groups:
        _launch(_group_dequantize_kernel, _group_dequantize_tuned, q.shape[0] * k,
                q, scale, zero_point, w, num_groups, GROUP=group_size, BITS=bits)
    return w


def group_dequantize_flat(q, scale, zero_point, bits: int, group_size: int, dtype: torch.dtype):
    """w = S * (q - Z) like group_dequantize_tiled, for any group size dividing K (per channel: g = K)."""
    w, k = _dequantized_empty(q, bits, dtype)
    numel = q.shape[0] * k
    if numel:
        block = 256 if interpreting() else 1024
        torch.library.wrap_triton(_dequantize_any_group_kernel)[(triton.cdiv(numel, block),)](
            q, scale, zero_point, w, numel, group_size, BITS=bits, BLOCK=block, num_warps=1 if interpreting() else 4)
    return w
