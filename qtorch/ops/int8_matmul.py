"""qtorch::int8_scaled_mm and qtorch::int8_linear_requant — int8 × int8 → int32 GEMM with fused epilogues.

int8_scaled_mm (float output):
  acc[m, n]  = Σ_k x_q[m, k] · w_q[n, k]                                              (int32)
  corr[m, n] = acc − Z_X[m]·Σ_k w_q[n, k]  (− Z_W[n]·Σ_k x_q[m, k] + K·Z_X[m]·Z_W[n] when w_zp is given)
  y[m, n]    = float(corr) · (S_X[m] · S_W[n]) + bias[n]                               (fp32, cast to out_dtype)
int8_linear_requant (integer-only, the course's formula; static per-tensor Z_X, per-channel weights):
  acc = Σ q_W q_X − Z_W Σ_k q_X − Z_X Σ_k q_W + K·Z_W·Z_X + bias_q
  q_Y = clamp(RDPOT(SRDHM(acc, M0), n) + Z_Y, −128, 127)       (see qtorch.quant.fixed_point)
CUDA kernels come from qtorch._C (csrc/); without it the reference runs on CUDA with a one-time warning.
"""
import torch

from qtorch.ops._checks import ACT_DTYPES, check_device, check_matrix, check_vector
from qtorch.ops._registry import LIB
from qtorch.quant.fixed_point import requantize

LIB.define(
    "int8_scaled_mm(Tensor x_q, Tensor x_scale, Tensor x_zp, Tensor w_q, Tensor w_scale, Tensor w_colsum, "
    "Tensor? w_zp, Tensor? bias, ScalarType out_dtype) -> Tensor"
)
LIB.define(
    "int8_linear_requant(Tensor x_q, int x_zp, Tensor w_q, Tensor w_zp, Tensor w_colsum, Tensor? bias_q, "
    "Tensor multiplier, Tensor shift, int y_zp) -> Tensor"
)


def check_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    check_matrix("x_q", x_q, (torch.int8,))
    check_matrix("w_q", w_q, (torch.int8,), cols=x_q.shape[1])
    check_device("w_q", w_q, x_q)
    m, n = x_q.shape[0], w_q.shape[0]
    check_vector("x_scale", x_scale, m, (torch.float32,), x_q)
    check_vector("x_zp", x_zp, m, (torch.int32,), x_q)
    check_vector("w_scale", w_scale, n, (torch.float32,), x_q)
    check_vector("w_colsum", w_colsum, n, (torch.int32,), x_q)
    check_vector("w_zp", w_zp, n, (torch.int32,), x_q)
    check_vector("bias", bias, n, ACT_DTYPES, x_q)
    if out_dtype not in ACT_DTYPES:
        raise TypeError(f"out_dtype: expected bfloat16, float16 or float32, got {out_dtype}")


def int8_accumulate(x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """Σ_k x_q[m, k] w_q[n, k] exactly, int32 (M, N), through PyTorch's own int8 GEMM (torch._int_mm)."""
    m = x_q.shape[0]
    if x_q.device.type == "cpu" and x_q.shape[1] < 8:  # torch._int_mm on CPU returns garbage at K = 1 (fuzzed K ≤ 64)
        return x_q.to(torch.int32) @ w_q.to(torch.int32).t()
    if x_q.device.type == "cpu" or m > 16:
        return torch._int_mm(x_q, w_q.t())
    padded = torch.zeros((17, x_q.shape[1]), dtype=torch.int8, device=x_q.device)  # _int_mm on CUDA needs M > 16
    padded[:m] = x_q
    return torch._int_mm(padded, w_q.t())[:m]


def int8_scaled_mm_reference(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    check_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype)
    acc = int8_accumulate(x_q, w_q)  # (M, N) int32
    corr = acc - x_zp[:, None] * w_colsum[None, :]
    if w_zp is not None:
        x_rowsum = x_q.sum(dim=1, dtype=torch.int32)  # (M,) Σ_k q_X
        corr = corr - w_zp[None, :] * x_rowsum[:, None] + x_q.shape[1] * x_zp[:, None] * w_zp[None, :]
    y = corr.float() * (x_scale[:, None] * w_scale[None, :])  # (M, N) fp32
    if bias is not None:
        y = y + bias.float()
    return y.to(out_dtype)


def check_requant(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    check_matrix("x_q", x_q, (torch.int8,))
    check_matrix("w_q", w_q, (torch.int8,), cols=x_q.shape[1])
    check_device("w_q", w_q, x_q)
    n = w_q.shape[0]
    for name, t in (("w_zp", w_zp), ("w_colsum", w_colsum), ("bias_q", bias_q), ("multiplier", multiplier),
                    ("shift", shift)):
        check_vector(name, t, n, (torch.int32,), x_q)
    for name, v in (("x_zp", x_zp), ("y_zp", y_zp)):
        if not -128 <= v <= 127:
            raise ValueError(f"{name}: expected an int8 zero point in [-128, 127], got {v}")


def int8_linear_requant_reference(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    check_requant(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp)
    k = x_q.shape[1]
    acc = int8_accumulate(x_q, w_q)  # (M, N) int32 Σ q_W q_X
    x_rowsum = x_q.sum(dim=1, dtype=torch.int32)  # (M,) Σ_k q_X
    acc = acc - w_zp[None, :] * x_rowsum[:, None] - x_zp * w_colsum[None, :] + k * x_zp * w_zp[None, :]
    if bias_q is not None:
        acc = acc + bias_q[None, :]
    return requantize(acc.to(torch.int32), multiplier, shift, y_zp)


@torch.library.register_fake("qtorch::int8_scaled_mm", lib=LIB)
def _(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    check_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype)
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype)


@torch.library.register_fake("qtorch::int8_linear_requant", lib=LIB)
def _(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    check_requant(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp)
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=torch.int8)


LIB.impl("int8_scaled_mm", int8_scaled_mm_reference, "CPU")
LIB.impl("int8_linear_requant", int8_linear_requant_reference, "CPU")


def register_cuda_fallback() -> None:
    """Without qtorch._C, run the references on CUDA (correct, not fast) and say so once."""
    from qtorch.ops._registry import warn_once

    def wrap(fn, name):
        def cuda_fallback(*args):
            warn_once(name, f"qtorch: the CUDA extension qtorch._C is not built; {name} runs the slow PyTorch "
                            "reference on CUDA (reinstall with nvcc and a CUDA build of torch)")
            return fn(*args)
        return cuda_fallback

    LIB.impl("int8_scaled_mm", wrap(int8_scaled_mm_reference, "int8_scaled_mm"), "CUDA")
    LIB.impl("int8_linear_requant", wrap(int8_linear_requant_reference, "int8_linear_requant"), "CUDA")
