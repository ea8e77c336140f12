"""Static W8A8: per-tensor activation parameters (S_X, Z_X as (1,) tensors) reach the int8 GEMM's epilogue as one
value (no per-call M-length tensors), and int8_linear_requant without w_zp (Z_W = 0, no row sums).

CPU: the per-tensor call equals the per-row call on the expanded parameters bit for bit, the static layer passes (1,)
tensors, and requant without w_zp equals requant with an all-zero w_zp. GPU (marked cuda): the CUDA ops bit-exact
with the CPU reference on awkward shapes (M in {0, 1, 17, 4099}, N and K not multiples of 16), the static layer on
CUDA equal to the CPU layer and capturable in a CUDA graph, and every int8 GEMM plan the tile sweep times
(benchmarks/bench_int8_gemm.py --sweep-plans) bit-exact when forced.
"""
import pathlib
import sys

import pytest
import torch

import qtorch.ops as qops
from qtorch.config import W8A8StaticConfig
from qtorch.nn import QuantLinear
from qtorch.quant import quantize_multiplier

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _int8(*shape, device="cpu"):
    return torch.randint(-128, 128, shape, dtype=torch.int8, device=device)


def _scaled_mm_args(m, n, k, *, w_zp, out_dtype, device="cpu"):
    """int8_scaled_mm arguments with per-tensor (1,) S_X and Z_X."""
    w_q = _int8(n, k, device=device)
    return (_int8(m, k, device=device), torch.rand(1, device=device) * 0.05 + 1e-3,
            torch.randint(-128, 128, (1,), dtype=torch.int32, device=device), w_q,
            torch.rand(n, device=device) * 0.02 + 5e-4, w_q.sum(1, dtype=torch.int32),
            torch.randint(-16, 17, (n,), dtype=torch.int32, device=device) if w_zp else None,
            torch.randn(n, device=device).to(out_dtype), out_dtype)


def _expanded(args):
    """The same call with S_X, Z_X expanded to one value per row."""
    m = args[0].shape[0]
    return args[:1] + (args[1].expand(m).contiguous(), args[2].expand(m).contiguous()) + args[3:]


def _requant_args(m, n, k, *, w_zp, device="cpu"):
    w_q = _int8(n, k, device=device)
    multiplier, shift = quantize_multiplier(torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-12.0, 0.5)))
    return (_int8(m, k, device=device), -5, w_q,
            torch.randint(-128, 128, (n,), dtype=torch.int32, device=device) if w_zp else None,
            w_q.sum(1, dtype=torch.int32), torch.randint(-9999, 9999, (n,), dtype=torch.int32, device=device),
            multiplier.to(device), shift.to(device), 7)


def _static_layer(n, k, bias=True):
    lin = torch.nn.Linear(k, n, bias=bias)
    w_scale = lin.weight.detach().abs().amax(dim=1) / 127  # (N,)
    q = torch.round(lin.weight.detach() / w_scale[:, None]).clamp(-128, 127).to(torch.int8)
    return QuantLinear.from_quantized(W8A8StaticConfig(), bias=None if lin.bias is None else lin.bias.detach(),
                                      q=q, scale=w_scale, x_scale=torch.tensor([0.02]),
                                      x_zp=torch.tensor([3], dtype=torch.int32))


# ------------------------------------------------------------------------------------------------ CPU

@pytest.mark.parametrize("m,n,k", [(0, 24, 8), (1, 16, 1), (17, 200, 40), (33, 48, 80)])
@pytest.mark.parametrize("w_zp", [False, True])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_per_tensor_equals_expanded_rows(m, n, k, w_zp, out_dtype):
    torch.manual_seed(m + n + k)
    args = _scaled_mm_args(m, n, k, w_zp=w_zp, out_dtype=out_dtype)
    y = qops.int8_scaled_mm(*args)
    assert y.shape == (m, n) and y.dtype == out_dtype
    assert torch.equal(y, qops.int8_scaled_mm(*_expanded(args)))


def test_per_row_length_is_checked():
    args = _scaled_mm_args(3, 16, 16, w_zp=False, out_dtype=torch.float32)
    with pytest.raises(ValueError, match=r"x_scale: expected shape \(3,\) per row or \(1,\) per tensor"):
        qops.int8_scaled_mm(args[0], torch.ones(2), *args[2:])
    with pytest.raises(ValueError, match="x_zp"):
        qops.int8_scaled_mm(*args[:2], torch.zeros(4, dtype=torch.int32), *args[3:])
    with pytest.raises(ValueError, match="w_scale"):  # per-channel vectors stay (N,)
        qops.int8_scaled_mm(*args[:4], torch.ones(1), *args[5:])


@pytest.mark.parametrize("m,n,k", [(0, 16, 16), (1, 24, 8), (17, 200, 40)])
def test_requant_without_w_zp_equals_zero_w_zp(m, n, k):
    torch.manual_seed(k)
    args = _requant_args(m, n, k, w_zp=False)
    zero = args[:3] + (torch.zeros(n, dtype=torch.int32),) + args[4:]
    assert torch.equal(qops.int8_linear_requant(*args), qops.int8_linear_requant(*zero))


def test_static_layer_passes_per_tensor_parameters(monkeypatch):
    """Z_X reaches the GEMM as its (1,) buffer; S_X as the row scale qtorch::quantize_per_tensor writes in its one pass
    over x (S_X on every finite row, NaN on a row holding NaN/Inf: the NaN policy without a separate pass)."""
    layer = _static_layer(24, 40)
    x = torch.randn(2, 5, 40)
    x[1, 2, 7] = float("nan")
    expected = layer(x)
    seen = []
    real = qops.int8_scaled_mm

    def spy(*args):
        seen.append((args[1].clone(), args[2]))
        return real(*args)

    monkeypatch.setattr(qops, "int8_scaled_mm", spy)
    y = layer(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0, equal_nan=True)
    (row_scale, x_zp), = seen
    assert x_zp is layer.x_zp and row_scale.shape == (10,)
    finite = torch.ones(10, dtype=torch.bool)
    finite[7] = False  # row (1, 2) of the (2, 5) leading dims
    assert torch.equal(row_scale[finite], layer.x_scale.expand(9)) and torch.isnan(row_scale[7])
    assert torch.isnan(y[1, 2]).all() and torch.isfinite(y.reshape(10, -1)[finite]).all()


# ------------------------------------------------------------------------------------------------ GPU

STATIC_SHAPES = [(m, n, k) for m in (0, 1, 17, 4099) for (n, k) in ((200, 100), (40, 72), (272, 1040), (4096, 4096))]


@pytest.fixture(scope="module")
def cuda_ops():
    import qtorch
    from qtorch._ext import extension_error

    assert qtorch.cuda_kernels_available(), f"qtorch._C did not load: {extension_error()}"
    return qops


def _cpu(args):
    return tuple(a.cpu() if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.cuda
@pytest.mark.parametrize("m,n,k", STATIC_SHAPES)
@pytest.mark.parametrize("w_zp,out_dtype", [(False, torch.bfloat16), (True, torch.float32)])
def test_per_tensor_cuda_bit_exact(cuda_ops, m, n, k, w_zp, out_dtype):
    args = _scaled_mm_args(m, n, k, w_zp=w_zp, out_dtype=out_dtype, device="cuda")
    y = cuda_ops.int8_scaled_mm(*args)
    ref = cuda_ops.int8_scaled_mm(*_cpu(args))
    assert y.shape == (m, n) and y.dtype == out_dtype
    assert torch.equal(y.cpu(), ref), f"{int((y.cpu() != ref).sum())} of {ref.numel()} outputs differ"


@pytest.mark.cuda
@pytest.mark.parametrize("m,n,k", STATIC_SHAPES)
@pytest.mark.parametrize("w_zp", [False, True])
def test_requant_cuda_bit_exact(cuda_ops, m, n, k, w_zp):
    args = _requant_args(m, n, k, w_zp=w_zp, device="cuda")
    q = cuda_ops.int8_linear_requant(*args)
    ref = cuda_ops.int8_linear_requant(*_cpu(args))
    assert torch.equal(q.cpu(), ref), f"{int((q.cpu() != ref).sum())} of {ref.numel()} outputs differ"


@pytest.mark.cuda
@pytest.mark.parametrize("n,k", [(200, 100), (512, 1024)])
def test_static_layer_cuda_matches_cpu_and_graphs(cuda_ops, n, k):
    layer = _static_layer(n, k)
    x = torch.randn(3, 17, k)
    expected, expected_flipped = layer(x), layer(x.flip(0))
    layer_cuda, x_cuda = layer.cuda(), x.cuda()  # Module.cuda() moves the layer itself
    assert torch.equal(layer_cuda(x_cuda).cpu(), expected)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        layer_cuda(x_cuda)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer_cuda(x_cuda)
    x_cuda.copy_(x.flip(0).cuda())
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y.cpu(), expected_flipped)


@pytest.mark.cuda
@pytest.mark.parametrize("m", [32, 100])
def test_every_swept_plan_is_bit_exact(cuda_ops, m):
    """Each (kernel, split_k) that bench_int8_gemm.py --sweep-plans forces computes the reference's result."""
    import qtorch._C as ext

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_int8_gemm import plan_options

    n, k = 528, 2048
    per_tensor = _scaled_mm_args(m, n, k, w_zp=True, out_dtype=torch.bfloat16, device="cuda")
    cases = [(args, cuda_ops.int8_scaled_mm(*_cpu(args))) for args in (per_tensor, _expanded(per_tensor))]
    props = torch.cuda.get_device_properties(0)
    options = plan_options(m, k, props.major, props.minor)
    assert options
    try:
        for kernel, split_k in options:
            ext._int8_force_plan(kernel, split_k)
            assert ext._int8_plan(m, n, k, props.major, props.minor, props.multi_processor_count) == \
                f"{kernel}/{split_k}"
            for args, ref in cases:
                assert torch.equal(cuda_ops.int8_scaled_mm(*args).cpu(), ref), (kernel, split_k)
    finally:
        ext._int8_force_plan("", 1)
