"""qtorch::quantize_per_token in plain aten ops, for compiled graphs: Inductor fuses it into the kernel that produces x
(RMSNorm / LayerNorm, SiLU·mul, a residual add, a transpose copy), so x is never written and re-read in bf16, and one
quantization of a shared input serves every sibling layer (q/k/v, gate/up: `once_per_traced_value`).

Same formula and bits as quantize_per_token_reference (docs/DESIGN.md "Rounding and ranges"), written so that every
compiler backend computes it exactly:
- Divisions: a / b (fp32 operands) as RN32(a · RN64(1 / b)) in float64. The relative error of the fp64 product is
  below 2^-52, while a quotient of two fp32 numbers lies at least 2^-49 (relative) from every fp32 rounding midpoint
  (it is never a midpoint: a 24-bit a over a 24-bit b has no 25-bit quotient), so the fp32 rounding is the IEEE
  quotient's. Inductor's Triton `/` on fp32 is an approximate division (div.full.f32), and a C++ compiler with
  -freciprocal-math may multiply by a reciprocal; neither can change an fp64 product rounded to fp32.
- x's rounding to its dtype: a fused producer hands its output over in fp32 without the bf16/fp16 rounding that
  storing it would apply (Inductor computes low-precision chains in fp32), so x is rounded to its dtype here, on the
  fp32 bits (round to nearest even); exact data of that dtype passes unchanged.
"""
import weakref

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from qtorch.quant.ranges import qrange

Q_MIN, Q_MAX = qrange(8)
FP16_MIN_NORMAL_BITS = 0x38800000  # fp32 bits of 2^-14, fp16's smallest normal (below it: fixed step 2^-24)
FP16_MAX_BITS = 0x477FE000  # fp32 bits of 65504, fp16's largest finite value
ABS_MASK = 0x7FFFFFFF  # fp32 bits & ABS_MASK = bits of |v|
INF_BITS = 0x7F800000  # bits of inf; |v|'s bits above it: NaN


def div_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """RN32(a / b) for fp32 a, b (broadcast), as RN32(a · RN64(1 / b)) (module docstring: the error bound)."""
    return (a.double() * torch.reciprocal(b.double())).float()


def _round_mantissa(bits: torch.Tensor, dropped_bits: int) -> torch.Tensor:
    """fp32 bits (int32) with the lowest `dropped_bits` mantissa bits rounded off, to nearest even (carry into the
    exponent included, so the largest values round up to inf as a conversion does)."""
    half = (1 << (dropped_bits - 1)) - 1
    rounded = bits + (half + ((bits >> dropped_bits) & 1))
    return rounded & ~((1 << dropped_bits) - 1)


def round_to_dtype(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp32 v rounded to the nearest `dtype` value (bf16, fp16 or fp32; ties to even), returned in fp32: what
    v.to(dtype).float() computes, in integer ops on v's bits that no compiler elides (for bf16 v is read once, so
    Inductor has no reason to store a fused producer's output for the second read). NaN stays NaN."""
    if dtype == torch.float32:
        return v
    bits = v.view(torch.int32)  # (M, K) int32
    if dtype == torch.bfloat16:
        rounded = _round_mantissa(bits, 16)
    else:  # fp16: 10 mantissa bits in the normal range, fixed step 2^-24 below it, inf beyond FP16_MAX
        normal = _round_mantissa(bits, 13)
        subnormal = (torch.round(v * 2.0 ** 24) * 2.0 ** -24).view(torch.int32)
        rounded = torch.where((bits & ABS_MASK) < FP16_MIN_NORMAL_BITS, subnormal, normal)
        rounded = torch.where((rounded & ABS_MASK) > FP16_MAX_BITS, (rounded & ~ABS_MASK) | INF_BITS, rounded)
    return torch.where((bits & ABS_MASK) > INF_BITS, bits, rounded).view(torch.float32)


def quantize_per_token_fusable(x: torch.Tensor):
    """x (M, K) bf16/fp16/fp32 -> q (M, K) int8, scale (M,) fp32, zero_point (M,) int32, bit-exact with
    quantize_per_token_reference:  S = (r_max − r_min) / 255 (1 if 0),  Z = clamp(round(−128 − r_min / S)),
    q = clamp(round(x / S) + Z, −128, 127)."""
    v = x.float()  # (M, K) fp32: a fused producer's value before its rounding to x.dtype
    # Rounding is monotonic, so it commutes with min and max: two roundings per row, not one per value, before the
    # reductions (the fused kernel's min/max pass then only recomputes the producer).
    r_min = torch.clamp(round_to_dtype(v.amin(dim=1), x.dtype), max=0.0)  # (M,) fp32
    r_max = torch.clamp(round_to_dtype(v.amax(dim=1), x.dtype), min=0.0)  # (M,) fp32
    xf = round_to_dtype(v, x.dtype)  # (M, K) fp32, the values x holds
    scale = div_exact(r_max - r_min, torch.full_like(r_max, float(Q_MAX - Q_MIN)))  # (M,) fp32
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # a NaN range keeps a NaN scale
    zero_point = torch.clamp(torch.round(Q_MIN - div_exact(r_min, scale)), Q_MIN, Q_MAX)  # (M,) fp32
    q = torch.clamp(torch.round(div_exact(xf, scale[:, None])) + zero_point[:, None], Q_MIN, Q_MAX)  # (M, K) fp32
    return q.to(torch.int8), scale, zero_point.to(torch.int32)


# Per trace (its functionalization mode): the quantizations traced so far, by the identity of the value quantized.
_traced: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def once_per_traced_value(x: torch.Tensor, quantize):
    """quantize(x), traced once per value: a later call in the same trace on the same value (same storage, offset,
    sizes, strides, dtype and version counter, e.g. the views q/k/v or gate/up each take of one normed input) returns
    the first call's outputs, so the graph quantizes it once (Inductor's inference graphs get no FX-level CSE to merge
    identical subgraphs). An in-place write to x (or any view of its storage) bumps the version: quantized anew.
    Outside a functionalizing trace, quantize(x)."""
    mode = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FUNCTIONAL)
    if mode is None:
        return quantize(x)
    memo = _traced.setdefault(mode, {})
    key = (StorageWeakRef(x.untyped_storage()).cdata, str(x.storage_offset()), str(tuple(x.shape)),
           str(x.stride()), x.dtype, x._version)
    if key not in memo:
        # as_strided (same layout): Inductor stores q, scale, zero_point once for every consumer; an unstored value
        # would be copied into each extern consumer (ExternKernel.require_strides -> copy_input): three int8 q/k/v
        outputs = tuple(t.as_strided(t.shape, t.stride()) for t in quantize(x))
        memo[key] = (x, outputs)  # x held: its storage's address is not reused within the trace
    return memo[key][1]

