"""Helpers shared by the Triton kernels: exact fp32 rounding, launch-mode detection, argument checks."""
import os

import torch
import triton
import triton.language as tl

# 1.5 * 2**23: adding then subtracting it rounds an fp32 value to the nearest integer, ties to even, exactly
# (IEEE add rounds to nearest even and the ulp of the sum is 1) for |v| < 2**22. Larger |v| only occur where the
# result is clamped to the quantized range anyway, so clamp(round_half_even(v)) is exact for every finite v.
ROUND_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def round_half_even(v):
    """rint(v) for fp32 v (= torch.round = libdevice.rint), written with two IEEE adds so it also runs in the
    interpreter (libdevice calls do not). Exact for |v| < 2**22; callers clamp the result to a narrower range."""
    return (v + ROUND_MAGIC) - ROUND_MAGIC


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(name: str, t: torch.Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors when interpreting."""
    if t.device.type != "cuda" and not interpreting():
        raise ValueError(f"{name} must be a CUDA tensor (or a CPU tensor with TRITON_INTERPRET=1), got {t.device}")


def check_float_dtype(name: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError(f"{name} must be bfloat16, float16 or float32, got {t.dtype}")


def check_2d(name: str, t: torch.Tensor) -> None:
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")


@triton.jit
def to_bfloat16_rne(v):
    """fp32 -> bf16 rounding to nearest even, written with integer ops so the interpreter (which truncates) and the
    GPU (cvt.rn) give the same bits as torch: add 0x7FFF plus the lowest kept bit, keep the high 16 bits."""
    bits = v.to(tl.int32, bitcast=True)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).to(tl.int16).to(tl.bfloat16, bitcast=True)


@triton.jit
def cast_rne(v, DTYPE: tl.constexpr):
    """fp32 -> DTYPE (bf16, fp16 or fp32) with round to nearest even on every backend."""
    if DTYPE == tl.bfloat16:
        return to_bfloat16_rne(v)
    else:
        return v.to(DTYPE)
