"""qtorch::quantize_per_token under torch.compile (qtorch.ops.fused_quant): the aten form is bit-exact with the
reference, Inductor fuses it into the kernel that produces its input (RMSNorm, LayerNorm, SiLU·mul, GELU, a transpose
copy), and sibling layers (q/k/v, gate/up) quantize their shared input in one kernel.

Bit-exactness of a fused quantization is checked against the reference applied to the producer's output as the same
compiled graph stores it (returned beside q): the compiled producer may sum in another order than eager, but the
quantization must be exactly that of the tensor it quantizes. CPU: Inductor's C++ backend; GPU (marked cuda): Triton.
"""
import contextlib
import re
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch._inductor.utils import run_and_get_code

import qtorch
import qtorch.ops as qops
from qtorch.config import W8A8DynamicConfig
from qtorch.models.llama import LLAMA_CONFIGS, RMSNorm, build_llama
from qtorch.ops.activation import quantize_per_token_reference
from qtorch.ops.fused_quant import quantize_per_token_fusable, round_to_dtype

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
cuda = pytest.mark.cuda


def assert_quantized_exactly(q, scale, zero_point, x):
    """(q, scale, zero_point) equal the reference quantization of x bit for bit."""
    q_ref, scale_ref, zp_ref = quantize_per_token_reference(x.cpu())
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and zero_point.dtype == torch.int32
    assert torch.equal(scale.cpu(), scale_ref)
    assert torch.equal(zero_point.cpu(), zp_ref)
    assert torch.equal(q.cpu(), q_ref)


def awkward_rows(m: int, k: int, dtype, device="cpu"):
    """(m, k) activations with a zero row, an all-positive and an all-negative row, a spread of magnitudes."""
    x = torch.randn(m, k) * torch.logspace(-3, 2, max(m, 1))[:m, None]
    if m >= 4:
        x[1] = 0
        x[2] = x[2].abs()
        x[3] = -x[3].abs()
    return x.to(dtype).to(device)


def kernel_launches(code: str) -> list[str]:
    """Names of the Inductor-generated kernels launched by a compiled graph's wrapper code (C++ and Triton)."""
    call = code[code.index("def call("):]
    return re.findall(r"\b(cpp_fused_\w+|triton_\w+_fused_\w+)(?:\(|\.run\()", call)


def compiled_code(fn, *args):
    """fn's outputs compiled, and the generated code. The AOTAutograd cache is off: its key (the Dynamo graph) does not
    see the Python code that decomposes the op during tracing (Inductor's cache, keyed on the traced graph, stays)."""
    torch._dynamo.reset()
    with torch.no_grad(), torch._functorch.config.patch(enable_autograd_cache=False):
        out, codes = run_and_get_code(torch.compile(fn, fullgraph=True, dynamic=False), *args)
    return out, "\n".join(codes)


# ----------------------------------------------------------------------------------- the aten form, eager (CPU)

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (17, 1), (17, 300), (4, 4096)])
def test_fusable_form_is_bit_exact(dtype, shape):
    x = awkward_rows(*shape, dtype)
    assert_quantized_exactly(*quantize_per_token_fusable(x), x)


def test_fusable_form_ties_and_nan_rows():
    x = torch.tensor([[0.0, 0.5, 1.5, 255.0],  # S = 1: exact ties round half to even
                      [0.0, 0.0, 0.0, 0.0],  # S = 1, Z = -128
                      [1.0, float("nan"), 3.0, 4.0]])  # NaN row -> NaN scale
    q, scale, zp = quantize_per_token_fusable(x)
    q_ref, scale_ref, zp_ref = quantize_per_token_reference(x)
    assert torch.equal(q[:2], q_ref[:2]) and torch.equal(scale[:2], scale_ref[:2]) and torch.equal(zp[:2], zp_ref[:2])
    assert torch.isnan(scale[2]) and torch.isnan(scale_ref[2])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_round_to_dtype_is_the_conversion(dtype):
    """Every fp32 rounding case: random bit patterns over the whole range (subnormals, overflow to inf, NaN), and the
    ties of the target format (one above each representable value: the halfway points)."""
    bits = torch.randint(-2 ** 31, 2 ** 31 - 1, (200_000,), dtype=torch.int64).to(torch.int32)
    v = bits.view(torch.float32)
    exact = torch.randn(20_000).to(dtype).float()
    half_ulp = exact.view(torch.int32) + (1 << (16 if dtype == torch.bfloat16 else 13)) // 2
    edges = torch.tensor([65504.0, 65519.0, 65520.0, 2.0 ** -14, 2.0 ** -25, 3 * 2.0 ** -26, 3.4e38, float("inf"),
                          -float("inf"), 5.96e-8, 0.0, -0.0])
    for vals in (v, half_ulp.view(torch.float32), edges, -edges):
        got, want = round_to_dtype(vals, dtype), vals.to(dtype).float()
        same = (got.view(torch.int32) == want.view(torch.int32)) | (torch.isnan(got) & torch.isnan(want))
        assert bool(same.all()), vals[~same][:5]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rounding_commutes_with_row_min_and_max(dtype):
    """quantize_per_token_fusable rounds a row's min and max instead of every value before the reductions: equal
    because the rounding is monotonic. Rows of random bit patterns (subnormals, overflow, ±inf, NaN rows), of
    values one below / at / one above the ties of the format, and of signed zeros."""
    bits = torch.randint(-2 ** 31, 2 ** 31 - 1, (400, 64), dtype=torch.int64).to(torch.int32)
    exact = torch.randn(400, 64).to(dtype).float().view(torch.int32)
    half = (1 << (16 if dtype == torch.bfloat16 else 13)) // 2
    zeros = torch.tensor([[0.0, -0.0] * 32, [-0.0] * 64, [0.0] * 64])
    for v in (bits.view(torch.float32), *((exact + half + d).view(torch.float32) for d in (-1, 0, 1)), zeros):
        for reduce in (torch.amin, torch.amax):
            got, want = round_to_dtype(reduce(v, dim=1), dtype), reduce(round_to_dtype(v, dtype), dim=1)
            same = (got.view(torch.int32) == want.view(torch.int32)) | (torch.isnan(got) & torch.isnan(want))
            # ±0 may come out as either sign: min/max do not order them, and the quantization does not see the sign
            same |= (got == 0) & (want == 0)
            assert bool(same.all()), (reduce.__name__, got[~same][:5], want[~same][:5])


# ------------------------------------------------------------------------ compiled (CPU: Inductor's C++ backend)

def test_compiled_op_routes_to_the_fusable_form_and_eager_does_not():
    with pytest.raises(ValueError, match="traced for torch.compile"):
        with qops.force_backend("quantize_per_token", "fusable"):
            qops.quantize_per_token(torch.randn(2, 8))
    _, code = compiled_code(lambda x: qops.quantize_per_token(x), torch.randn(3, 8))
    assert len(kernel_launches(code)) == 1 and "wrap_triton" not in code


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_op_is_bit_exact(dtype):
    fn = torch.compile(lambda x: qops.quantize_per_token(x), fullgraph=True, dynamic=False)
    for shape in ((1, 1), (17, 300), (0, 8)):
        x = awkward_rows(*shape, dtype)
        assert_quantized_exactly(*fn(x), x)


def norm_then_quantize(norm):
    def fn(x):
        y = norm(x)
        return (y, *qops.quantize_per_token(y))
    return fn


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_into_rmsnorm_bit_exact(dtype):
    fn = norm_then_quantize(producer("rmsnorm", 300, dtype))
    (y, q, scale, zp), _ = compiled_code(fn, awkward_rows(17, 300, dtype))
    assert_quantized_exactly(q, scale, zp, y)


def producer(name: str, k: int, dtype, device="cpu"):
    """y = f(x) of the kinds that precede W8A8 linears: RMSNorm, LayerNorm, SiLU(x)·g, x + g (random g, weights)."""
    g = torch.randn(k, device=device).to(dtype)
    if name in ("rmsnorm", "layernorm"):
        norm = (RMSNorm(k) if name == "rmsnorm" else nn.LayerNorm(k)).to(device, dtype)
        nn.init.normal_(norm.weight)
        return norm
    return (lambda a: F.silu(a) * g) if name == "silu_mul" else (lambda a: a + g)


@pytest.mark.parametrize("name, dtype", [("layernorm", torch.bfloat16), ("silu_mul", torch.bfloat16),
                                         ("residual_add", torch.float16)])
def test_fused_into_other_producers_bit_exact(name, dtype):
    (y, q, scale, zp), _ = compiled_code(norm_then_quantize(producer(name, 64, dtype)), awkward_rows(17, 64, dtype))
    assert_quantized_exactly(q, scale, zp, y)


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
def test_quantization_is_fused_into_the_norm(norm):
    """One kernel computes the norm and quantizes it. RMSNorm's output is never written; LayerNorm's (5 inputs: x,
    mean, rstd, weight, bias) is kept in an fp32 scratch row by that kernel, as Inductor keeps any value of more than
    realize_reads_threshold = 4 inputs that is read twice (by the min/max and by the rounding)."""
    module = (RMSNorm(256) if norm == "rmsnorm" else nn.LayerNorm(256)).to(torch.bfloat16)
    x = torch.randn(17, 256, dtype=torch.bfloat16)
    _, code = compiled_code(lambda x: qops.quantize_per_token(module(x)), x)
    assert len(kernel_launches(code)) == 1, kernel_launches(code)
    if norm == "rmsnorm":
        assert not re.search(r"empty_strided_\w+\(\(17, 256\), \(256, 1\), torch\.(bfloat16|float32)", code)


def w8a8_linears(*shapes, dtype=torch.bfloat16):
    layers = nn.ModuleList(nn.Linear(k, n, bias=False).to(dtype) for k, n in shapes)
    qtorch.quantize_(layers, W8A8DynamicConfig())
    return list(layers)


def test_siblings_share_one_quantization():
    """q/k/v after one norm: one generated kernel (the norm and its quantization), one int8 copy of the input, read by
    the three int8 GEMMs."""
    norm = RMSNorm(128).to(torch.bfloat16)
    wq, wk, wv = w8a8_linears((128, 128), (128, 64), (128, 64))

    def qkv(x):
        h = norm(x)
        return wq(h), wk(h), wv(h)

    x = torch.randn(2, 9, 128, dtype=torch.bfloat16)
    outs, code = compiled_code(qkv, x)
    assert len(kernel_launches(code)) == 1, kernel_launches(code)
    assert len(re.findall(r"empty_strided_\w+\(\(18, 128\), \(128, 1\), torch\.int8\)", code)) == 1
    gemm_inputs = re.findall(r"qtorch\.int8_scaled_mm\.default\((\w+), (\w+), (\w+),", code)
    assert len(gemm_inputs) == 3 and len(set(gemm_inputs)) == 1, gemm_inputs
    for out, layer in zip(outs, (wq, wk, wv)):
        torch.testing.assert_close(out, layer(norm(x)), rtol=0.02, atol=0.02)


def test_an_in_place_write_between_siblings_quantizes_anew():
    def fn(x):
        h = x * 2
        first = qops.quantize_per_token(h.view(-1, 16))
        h.add_(1.0)  # bumps h's version: the second call must see the new values
        return (*first, *qops.quantize_per_token(h.view(-1, 16)))

    x = awkward_rows(6, 16, torch.float32)
    out, _ = compiled_code(fn, x)
    assert_quantized_exactly(*out[:3], x * 2)
    assert_quantized_exactly(*out[3:], x * 2 + 1)


class EncoderBlock(nn.Module):
    """nn.TransformerEncoderLayer's pre-norm structure from plain modules: LayerNorm, Linear q/k/v/out, SDPA, GELU."""

    def __init__(self, dim=64, heads=4, hidden=128):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):  # (B, S, dim)
        b, s, d = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).view(b, s, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d)
        x = x + self.out(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def quantized_copy(model):
    import copy

    model = copy.deepcopy(model)
    qtorch.quantize_(model, W8A8DynamicConfig())
    return model


def check_quantization_adds_no_kernel(which: str, device: str, seq: int, force_fused: bool = False) -> None:
    """Every quantization fuses into its producer: the W8A8 model's compiled graph launches at most one generated
    kernel more than the bf16 model's (the attention output's quantization, when the attention kernel leaves it in
    the layout the output projection reads: nothing to fuse into), where unfused quantizations add one per distinct
    linear input (4 per block + the head); its output stays close to eager W8A8."""
    if which == "llama":
        model = build_llama(replace(LLAMA_CONFIGS["tiny"], n_layers=1), dtype=torch.bfloat16, device=device)
        args = (torch.randint(0, 512, (2, seq), device=device),)
    else:
        model = EncoderBlock().to(device, torch.bfloat16)
        args = (torch.randn(2, seq, 64, device=device, dtype=torch.bfloat16),)
    quantized = quantized_copy(model)
    with fused_on_cuda() if force_fused else contextlib.nullcontext():  # the trace only: eager runs the kernel
        compiled, code = compiled_code(quantized, *args)
    assert len(kernel_launches(code)) <= len(kernel_launches(compiled_code(model, *args)[1])) + 1
    with torch.no_grad():
        eager = quantized(*args)
    torch.testing.assert_close(compiled.float(), eager.float(), rtol=0.05, atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["llama", "encoder_block"])
def test_quantization_adds_no_kernel_to_the_compiled_model(which):
    check_quantization_adds_no_kernel(which, "cpu", 17)


# -------------------------------------------------------------------------------------------------- GPU (Triton)

def fused_on_cuda():
    """The fused form where the routing would pick the Triton kernel (CUDA: measured faster, see activation.py)."""
    return qops.force_backend("quantize_per_token", "fusable")


@cuda
@pytest.mark.parametrize("backend", ["fusable", "triton"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_compiled_op_matches_eager_kernel_and_reference(backend, dtype):
    for shape in ((1, 1), (17, 300), (64, 4096), (3, 11008), (0, 16)):
        x = awkward_rows(*shape, dtype, "cuda")
        with qops.force_backend("quantize_per_token", backend):  # decided while torch.compile traces
            (q, scale, zp), _ = compiled_code(lambda x: qops.quantize_per_token(x), x)
        assert_quantized_exactly(q, scale, zp, x)
        eager = qops.quantize_per_token(x)  # the Triton kernel
        assert torch.equal(q, eager[0]) and torch.equal(scale, eager[1]) and torch.equal(zp, eager[2])


@cuda
@pytest.mark.parametrize("name, dtype", [("rmsnorm", torch.bfloat16), ("rmsnorm", torch.float16),
                                         ("rmsnorm", torch.float32), ("layernorm", torch.bfloat16),
                                         ("silu_mul", torch.bfloat16), ("residual_add", torch.float16)])
def test_cuda_fused_into_producer_bit_exact(name, dtype):
    x = awkward_rows(33, 4096, dtype, "cuda")
    with fused_on_cuda():
        (y, q, scale, zp), code = compiled_code(norm_then_quantize(producer(name, 4096, dtype, "cuda")), x)
    assert "_quantize_per_token_kernel" not in code  # not the eager Triton kernel
    assert_quantized_exactly(q, scale, zp, y)
    eager = qops.quantize_per_token(y)  # the Triton kernel on the same tensor
    assert torch.equal(q, eager[0]) and torch.equal(scale, eager[1]) and torch.equal(zp, eager[2])


@cuda
def test_cuda_norm_and_quantization_in_one_kernel():
    norm = RMSNorm(4096).to("cuda", torch.bfloat16)
    x = torch.randn(2048, 4096, device="cuda", dtype=torch.bfloat16)
    with fused_on_cuda():
        (q, scale, zp), code = compiled_code(lambda x: qops.quantize_per_token(norm(x)), x)
    assert len(kernel_launches(code)) == 1, kernel_launches(code)
    assert not re.search(r"empty_strided_cuda\(\(2048, 4096\), \(4096, 1\), torch\.(bfloat16|float32)", code)


@cuda
@pytest.mark.parametrize("which", ["llama", "encoder_block"])
def test_cuda_quantization_adds_no_kernel_to_the_compiled_model(which):
    check_quantization_adds_no_kernel(which, "cuda", 64, force_fused=True)
