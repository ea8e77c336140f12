"""Fixed-point requantization: M = S_W S_X / S_Y applied to an int32 accumulator with integer arithmetic only.

M is stored as a Q31 multiplier and a shift, M = M0 · 2^-31 · 2^-n with M0 ∈ [2^30, 2^31) (i.e. M0/2^31 ∈ [0.5, 1));
n < 0 when M ≥ 1. Applying it (gemmlowp / TFLite semantics, as on the device):
  x = saturate_int32(acc · 2^max(-n, 0))
  x = SRDHM(x, M0)        saturating rounding doubling high multiply = floor(x·M0 / 2^31 + 1/2) (ties up)
  x = RDPOT(x, max(n, 0)) rounding divide by a power of two          = round_half_away(x / 2^n)
  q = clamp(x + Z_Y, -128, 127)
"""
import torch

from qtorch.quant._validate import check_tensor

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
MAX_RIGHT_SHIFT = 31
MAX_LEFT_SHIFT = 30


def quantize_multiplier(multiplier) -> tuple[torch.Tensor, torch.Tensor]:
    """Real multiplier(s) M > 0 -> (M0 int32, n int32) with M ≈ M0 · 2^-31 · 2^-n.

    frexp gives M = m · 2^e with m ∈ [0.5, 1); M0 = round(m · 2^31); if that rounds up to 2^31, M0 = 2^30 and e += 1;
    n = -e. A multiplier below 2^-(31+31) underflows to (M0, n) = (0, 0): the product is 0 for any int32 input.
    """
    m = torch.as_tensor(multiplier, dtype=torch.float64)
    if not bool(torch.isfinite(m).all()) or bool((m <= 0).any()):
        raise ValueError("multiplier: expected finite values > 0 (M = S_W·S_X/S_Y)")
    mant, exp = torch.frexp(m)
    m0 = torch.round(mant * float(1 << 31)).to(torch.int64)
    carry = m0 == (1 << 31)
    m0 = torch.where(carry, torch.full_like(m0, 1 << 30), m0)
    n = -(exp.to(torch.int64) + carry.to(torch.int64))
    if bool((n < -MAX_LEFT_SHIFT).any()):
        raise ValueError(f"multiplier: values ≥ 2^{MAX_LEFT_SHIFT} cannot be represented, got max {float(m.max())}")
    tiny = n > MAX_RIGHT_SHIFT
    m0 = torch.where(tiny, torch.zeros_like(m0), m0)
    n = torch.where(tiny, torch.zeros_like(n), n)
    return m0.to(torch.int32), n.to(torch.int32)


def srdhm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Saturating rounding doubling high multiply of int32 tensors: (a·b + nudge) / 2^31, truncated, saturated."""
    a64, b64 = a.to(torch.int64), b.to(torch.int64)
    ab = a64 * b64
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    high = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return torch.where(overflow, torch.full_like(high, INT32_MAX), high).to(torch.int32)


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """x / 2^exponent rounded to nearest, ties away from zero (gemmlowp RoundingDivideByPOT), exponent in [0, 31]."""
    x64 = x.to(torch.int64)
    e = torch.as_tensor(exponent, dtype=torch.int64, device=x.device)
    mask = torch.bitwise_left_shift(torch.ones_like(e), e) - 1
    remainder = torch.bitwise_and(x64, mask)
    threshold = torch.bitwise_right_shift(mask, 1) + (x64 < 0).to(torch.int64)
    out = torch.bitwise_right_shift(x64, e) + (remainder > threshold).to(torch.int64)
    return out.to(torch.int32)


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, zero_point: int,
               bits: int = 8) -> torch.Tensor:
    """q = clamp(RDPOT(SRDHM(sat(acc·2^left), M0), right) + Z_Y) -> int8; multiplier/shift broadcast over acc's last dim."""
    check_tensor("acc", acc)
    if acc.dtype != torch.int32:
        raise TypeError(f"acc: expected int32 accumulators, got {acc.dtype}")
    m0 = torch.as_tensor(multiplier, dtype=torch.int32, device=acc.device)
    n = torch.as_tensor(shift, dtype=torch.int64, device=acc.device)
    if bool((n > MAX_RIGHT_SHIFT).any()) or bool((n < -MAX_LEFT_SHIFT).any()):
        raise ValueError(f"shift: expected values in [{-MAX_LEFT_SHIFT}, {MAX_RIGHT_SHIFT}]")
    left = torch.clamp(-n, min=0)
    right = torch.clamp(n, min=0)
    x = torch.clamp(torch.bitwise_left_shift(acc.to(torch.int64), left), INT32_MIN, INT32_MAX).to(torch.int32)
    x = rounding_divide_by_pot(srdhm(x, m0), right)
    q_min, q_max = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return torch.clamp(x.to(torch.int64) + int(zero_point), q_min, q_max).to(torch.int8)
