"""Helpers shared by the Triton kernels: exact fp32 rounding, launch-mode detection."""
import os

import triton
import triton.language as tl

# 1.5 * 2**23: adding then subtracting it rounds an fp32 value to the nearest integer, ties to even, exactly
# (IEEE add rounds to nearest even and the ulp of the sum is 1) for |v| < 2**22. Larger |v| only occur where the
# result is clamped to the quantized range anyway, so clamp(round_half_even(v)) is exact for every finite v.
ROUND_MAGIC = tl.constexpr(12582912.0)


# Bit pattern of ROUND_MAGIC: for an integer n with |n| < 2**22, the fp32 value ROUND_MAGIC + n has bits MAGIC_BITS + n.
MAGIC_BITS = tl.constexpr(0x4B400000)


@triton.jit
def round_half_even(v):
    """rint(v) for fp32 v (= torch.round = libdevice.rint), written with two IEEE adds so it also runs in the
    interpreter (libdevice calls do not). Exact for |v| < 2**22; callers clamp the result to a narrower range."""
    return (v + ROUND_MAGIC) - ROUND_MAGIC


@triton.jit
def quantize_rounded(v, zero_point, QMIN: tl.constexpr, QMAX: tl.constexpr):
    """clamp(rint(v) + Z, QMIN, QMAX) as int32, for fp32 v and an integer-valued fp32 Z in [QMIN, QMAX].

    Clamping v to [QMIN - Z, QMAX - Z] before rounding is equivalent (integer bounds). The rounding add leaves the
    integer in the low mantissa bits, so the int32 result is a bit-cast and an integer add: no float->int convert
    (F2I runs at 1/8 of the FP32 rate on sm_90)."""
    clamped = tl.minimum(tl.maximum(v, QMIN - zero_point), QMAX - zero_point)
    magic_bits = (clamped + ROUND_MAGIC).to(tl.int32, bitcast=True)  # MAGIC_BITS + rint(clamped)
    return magic_bits + (zero_point.to(tl.int32) - MAGIC_BITS)


@triton.jit
def small_int_to_float(i):
    """fp32(i) for int32 |i| < 2**22 by bit-cast and one add (I2F runs at 1/8 of the FP32 rate on sm_90)."""
    return (i + MAGIC_BITS).to(tl.float32, bitcast=True) - ROUND_MAGIC


def quick_bench(fn, quantiles=None):
    """Autotuner timing with a short budget (5 ms warm-up, 20 ms of repeats; the L2 is flushed between repeats)."""
    return triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles)


def autotune(configs, key):
    """triton.autotune over configs, timed by quick_bench. With QTORCH_AUTOTUNE=0 (set by tests/conftest.py) only the
    first config: a launch compiles one kernel per specialization instead of one per config, and times nothing."""
    if os.environ.get("QTORCH_AUTOTUNE", "1") == "0":
        configs = configs[:1]
    return triton.autotune(configs, key=key, do_bench=quick_bench)


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def to_bfloat16_rne(v):
    """fp32 -> bf16 rounding to nearest even, written with integer ops so the interpreter (which truncates) and the
    GPU (cvt.rn) give the same bits as torch: add 0x7FFF plus the lowest kept bit, keep the high 16 bits. NaN goes
    through the plain conversion: the GPU's canonical NaN (0x7FFFFFFF) plus the bias would wrap to -0.0."""
    bits = v.to(tl.int32, bitcast=True)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return tl.where(v == v, (rounded >> 16).to(tl.int16).to(tl.bfloat16, bitcast=True), v.to(tl.bfloat16))


@triton.jit
def cast_rne(v, DTYPE: tl.constexpr):
    """fp32 -> DTYPE (bf16, fp16 or fp32) with round to nearest even on every backend."""
    if DTYPE == tl.bfloat16:
        return to_bfloat16_rne(v)
    else:
        return v.to(DTYPE)
