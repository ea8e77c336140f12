"""qtorch::int8_scaled_mm and qtorch::int8_linear_requant — int8 × int8 → int32 GEMM with fused epilogues.

int8_scaled_mm (float output; S_X, Z_X per row (M,) — dynamic — or per tensor (1,) — static, read by the kernel
as one value, never expanded to M):
  acc[m, n]  = Σ_k x_q[m, k] · w_q[n, k]                                              (int32)
  corr[m, n] = acc − Z_X[m]·Σ_k w_q[n, k]  (− Z_W[n]·Σ_k x_q[m, k] + K·Z_X[m]·Z_W[n] when w_zp is given)
  y[m, n]    = float(corr) · (S_X[m] · S_W[n]) + bias[n]                               (fp32, cast to out_dtype)
int8_linear_requant (integer-only, gemmlowp's formula (Jacob et al. 2018); static per-tensor Z_X, per-channel weights):
  acc = Σ q_W q_X − Z_W Σ_k q_X − Z_X Σ_k q_W + K·Z_W·Z_X + bias_q
  q_Y = clamp(RDPOT(SRDHM(acc, M0), n) + Z_Y, −128, 127)       (see qtorch.quant.fixed_point)
Backends (qtorch.ops.routing, best first): "cuda_int8" — the C++ kernels of qtorch._C, registered there as the private
ops qtorch::_int8_scaled_mm_cuda / qtorch::_int8_linear_requant_cuda (same schemas), which need K a positive multiple
of 16, N a multiple of 16 and 16-byte aligned contiguous x_q, w_q; "cuda_int8_padded" — the same kernels on operands
zero-padded to those multiples (exact, see pad_operands; said once per shape); "reference" — PyTorch (on CUDA only
without qtorch._C, said once). Every device accepts the same inputs.
"""
import functools

import torch
import torch.nn.functional as F

from qtorch.ops import routing
from qtorch.ops._checks import ACT_DTYPES, check_device, check_matrix, check_vector
from qtorch.ops._registry import (LIB, NO_EXTENSION, extension_ready, reference_backend, reference_on_cuda,
                                  warn_once)
from qtorch.quant.fixed_point import requantize

SCALED_MM_SCHEMA = ("(Tensor x_q, Tensor x_scale, Tensor x_zp, Tensor w_q, Tensor w_scale, Tensor w_colsum, "
                    "Tensor? w_zp, Tensor? bias, ScalarType out_dtype) -> Tensor")
# w_zp None: Z_W = 0 (symmetric weights), and the kernels skip the row sums of x_q.
REQUANT_SCHEMA = ("(Tensor x_q, int x_zp, Tensor w_q, Tensor? w_zp, Tensor w_colsum, Tensor? bias_q, "
                  "Tensor multiplier, Tensor shift, int y_zp) -> Tensor")
# The C++ kernels' shape rule: K a positive multiple of KERNEL_MULTIPLE, N a multiple of it, 16-byte aligned operands.
KERNEL_MULTIPLE = 16
KERNEL_ALIGN_BYTES = 16

LIB.define("_int8_scaled_mm_cuda" + SCALED_MM_SCHEMA)  # CUDA kernel: qtorch._C (csrc/bindings/int8_gemm_ops.cpp)
LIB.define("_int8_linear_requant_cuda" + REQUANT_SCHEMA)


def check_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    check_matrix("x_q", x_q, (torch.int8,))
    check_matrix("w_q", w_q, (torch.int8,), cols=x_q.shape[1])
    check_device("w_q", w_q, x_q)
    m, n = x_q.shape[0], w_q.shape[0]
    check_vector("x_scale", x_scale, m, (torch.float32,), x_q, per_tensor=True)
    check_vector("x_zp", x_zp, m, (torch.int32,), x_q, per_tensor=True)
    check_vector("w_scale", w_scale, n, (torch.float32,), x_q)
    check_vector("w_colsum", w_colsum, n, (torch.int32,), x_q)
    check_vector("w_zp", w_zp, n, (torch.int32,), x_q)
    check_vector("bias", bias, n, ACT_DTYPES, x_q)
    if out_dtype not in ACT_DTYPES:
        raise TypeError(f"out_dtype: expected bfloat16, float16 or float32, got {out_dtype}")


def int8_accumulate(x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """Σ_k x_q[m, k] w_q[n, k] exactly, int32 (M, N). CPU: PyTorch's int8 GEMM (torch._int_mm), except K < 8, where
    it returns wrong sums (torch 2.13, K = 1; fuzzed K ≤ 64) and an int32 matmul is used. CUDA (only without
    qtorch._C): an fp64 GEMM, exact since |Σ| ≤ K·2^14 < 2^53 (torch._int_mm there needs M > 16 and K, N multiples
    of 8)."""
    if x_q.device.type != "cpu":
        return (x_q.double() @ w_q.double().t()).to(torch.int32)
    if x_q.shape[1] < 8:
        return x_q.to(torch.int32) @ w_q.to(torch.int32).t()
    return torch._int_mm(x_q, w_q.t())


def int8_scaled_mm_reference(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    """PyTorch reference of int8_scaled_mm on arguments check_scaled_mm accepted ((1,) S_X, Z_X broadcast)."""
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
    """PyTorch reference of int8_linear_requant on arguments check_requant accepted."""
    acc = int8_accumulate(x_q, w_q) - x_zp * w_colsum[None, :]  # (M, N) int32 Σ q_W q_X − Z_X Σ_k q_W
    if w_zp is not None:
        x_rowsum = x_q.sum(dim=1, dtype=torch.int32)  # (M,) Σ_k q_X
        acc = acc - w_zp[None, :] * x_rowsum[:, None] + x_q.shape[1] * x_zp * w_zp[None, :]
    if bias_q is not None:
        acc = acc + bias_q[None, :]
    return requantize(acc.to(torch.int32), multiplier, shift, y_zp)


def _kernel_ready(t: torch.Tensor) -> bool:
    return t.is_contiguous() and t.data_ptr() % KERNEL_ALIGN_BYTES == 0


def _round_up(v: int) -> int:
    return max(KERNEL_MULTIPLE, -(-v // KERNEL_MULTIPLE) * KERNEL_MULTIPLE)


def gemm_meta(x_q: torch.Tensor, w_q: torch.Tensor) -> dict:
    """What the backends' can_implement read: N, K and whether x_q, w_q are contiguous and 16-byte aligned."""
    return {"device": x_q.device.type, "n": w_q.shape[0], "k": x_q.shape[1],
            "aligned": _kernel_ready(x_q) and _kernel_ready(w_q)}


def pad_operands(x_q, w_q, w_colsum, w_zp, per_channel: dict) -> tuple:
    """Zero-pad K to a positive multiple of 16 (columns of x_q and w_q) and N to a multiple of 16 (rows of w_q and
    every per-channel vector): fresh aligned tensors. Exact: padded products and row/column sums are 0; the term
    K·Z_X·Z_W then counts p = K_pad − K extra columns, which w_colsum + p·Z_W cancels (−Z_X·p·Z_W).
    Returns (x_q, w_q, per_channel padded, N)."""
    (n, k), k_pad = w_q.shape, _round_up(x_q.shape[1])
    n_pad = _round_up(n) if n else 0
    if w_zp is not None and k_pad != k:
        w_colsum = w_colsum + (k_pad - k) * w_zp  # (N,) int32
    vectors = dict(per_channel, w_colsum=w_colsum, w_zp=w_zp)
    padded = {name: None if v is None else F.pad(v, (0, n_pad - n)) for name, v in vectors.items()}
    return _fresh(F.pad(x_q, (0, k_pad - k))), _fresh(F.pad(w_q, (0, k_pad - k, 0, n_pad - n))), padded, n


def _fresh(t: torch.Tensor) -> torch.Tensor:
    """t as the kernels read it (contiguous, aligned): F.pad by zero can hand back a strided or unaligned input."""
    return t if _kernel_ready(t) else t.clone(memory_format=torch.contiguous_format)


def _cuda_int8_ready(n, k, aligned, **meta):
    ok, reason = extension_ready()
    if not ok:
        return ok, reason
    if k == 0 or k % KERNEL_MULTIPLE or n % KERNEL_MULTIPLE:
        return False, f"needs N and K multiples of {KERNEL_MULTIPLE} (K > 0), got N = {n}, K = {k}"
    if not aligned:
        return False, f"needs contiguous, {KERNEL_ALIGN_BYTES}-byte aligned x_q and w_q"
    return routing.YES


def _padded_warning(op: str, n: int, k: int) -> None:
    warn_once(f"{op}-padded-{n}-{k}", f"qtorch: {op} with N = {n}, K = {k} takes the zero-padded path (the int8 "
                                      f"kernels need N, K multiples of {KERNEL_MULTIPLE}: one padded copy of x_q and "
                                      "w_q per call; pad the layer at conversion to avoid it)")


@functools.cache
def _arg_names(schema: str) -> tuple:
    """("x_q", "x_scale", …) of a schema "(Tensor x_q, Tensor x_scale, …) -> Tensor", in order (parsed once)."""
    return tuple(arg.split()[-1] for arg in schema[1:schema.index(")")].split(","))


def _run_padded(op: str, schema: str, kernel, args: tuple, per_channel: tuple):
    """The padded route of `op`: warn once per shape, zero-pad x_q, w_q, w_colsum, w_zp and the per-channel vectors
    named in per_channel (pad_operands), call `kernel` on them (args in the schema's order), keep the first N
    columns."""
    named = dict(zip(_arg_names(schema), args))
    x_q, w_q = named["x_q"], named["w_q"]
    _padded_warning(op, w_q.shape[0], x_q.shape[1])
    x_p, w_p, vectors, n = pad_operands(x_q, w_q, named["w_colsum"], named["w_zp"],
                                        {name: named[name] for name in per_channel})
    y = kernel(*dict(named, x_q=x_p, w_q=w_p, **vectors).values())  # (M, N_pad)
    return y if y.shape[1] == n else y[:, :n].contiguous()


# --- int8_scaled_mm ----------------------------------------------------------------------------------------------
def _scaled_mm_aligned(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    c = torch.Tensor.contiguous
    return torch.ops.qtorch._int8_scaled_mm_cuda(x_q, c(x_scale), c(x_zp), w_q, c(w_scale), c(w_colsum),
                                                 w_zp if w_zp is None else c(w_zp),
                                                 bias if bias is None else c(bias), out_dtype)


def int8_scaled_mm_padded(*args, kernel=_scaled_mm_aligned):
    """The padded route (_run_padded) around `kernel` (the aligned C++ op; the tests pass the reference)."""
    return _run_padded("int8_scaled_mm", SCALED_MM_SCHEMA, kernel, args, ("w_scale", "bias"))


routing.register_backends("int8_scaled_mm", [
    reference_backend(int8_scaled_mm_reference),
    routing.Backend("cuda_int8", ("cuda",), _cuda_int8_ready, _scaled_mm_aligned),
    routing.Backend("cuda_int8_padded", ("cuda",), extension_ready, int8_scaled_mm_padded),
    reference_on_cuda("int8_scaled_mm", int8_scaled_mm_reference, NO_EXTENSION),
])


@torch.library.custom_op("qtorch::int8_scaled_mm", mutates_args=(), schema=SCALED_MM_SCHEMA)
def int8_scaled_mm(*args):
    """y (M, N) out_dtype = float(Σ_k x_q w_q − Z_X colsum_W [− Z_W rowsum_X + K Z_X Z_W]) · S_X S_W + bias."""
    check_scaled_mm(*args)
    x_q, w_q = args[0], args[3]
    return routing.select("int8_scaled_mm", **gemm_meta(x_q, w_q)).run(*args)


@int8_scaled_mm.register_fake
def _(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    check_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype)
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype)


@torch.library.register_fake("qtorch::_int8_scaled_mm_cuda", lib=LIB)
def _(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, w_zp, bias, out_dtype):
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype)


# --- int8_linear_requant -----------------------------------------------------------------------------------------
def _requant_aligned(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    c = torch.Tensor.contiguous
    return torch.ops.qtorch._int8_linear_requant_cuda(x_q, x_zp, w_q, w_zp if w_zp is None else c(w_zp),
                                                      c(w_colsum), bias_q if bias_q is None else c(bias_q),
                                                      c(multiplier), c(shift), y_zp)


def int8_linear_requant_padded(*args, kernel=_requant_aligned):
    """The padded route (_run_padded) around `kernel` (the aligned C++ op; the tests pass the reference)."""
    return _run_padded("int8_linear_requant", REQUANT_SCHEMA, kernel, args, ("bias_q", "multiplier", "shift"))


routing.register_backends("int8_linear_requant", [
    reference_backend(int8_linear_requant_reference),
    routing.Backend("cuda_int8", ("cuda",), _cuda_int8_ready, _requant_aligned),
    routing.Backend("cuda_int8_padded", ("cuda",), extension_ready, int8_linear_requant_padded),
    reference_on_cuda("int8_linear_requant", int8_linear_requant_reference, NO_EXTENSION),
])


@torch.library.custom_op("qtorch::int8_linear_requant", mutates_args=(), schema=REQUANT_SCHEMA)
def int8_linear_requant(*args):
    """q_Y (M, N) int8 = requantize(Σ_k q_X q_W − Z_W rowsum_X − Z_X colsum_W + K Z_X Z_W + b_q, M0, n, Z_Y)."""
    check_requant(*args)
    x_q, w_q = args[0], args[2]
    return routing.select("int8_linear_requant", **gemm_meta(x_q, w_q)).run(*args)


@int8_linear_requant.register_fake
def _(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    check_requant(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp)
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=torch.int8)


@torch.library.register_fake("qtorch::_int8_linear_requant_cuda", lib=LIB)
def _(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp):
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=torch.int8)
