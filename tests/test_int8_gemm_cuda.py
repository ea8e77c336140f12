"""The hand-written CUDA int8 GEMM (csrc/, qtorch._C) behind qtorch::int8_scaled_mm and qtorch::int8_linear_requant.

GPU tests (marked cuda): the CUDA ops against the CPU reference ops on copies of the same inputs (bit for bit: the
kernels' epilogue uses the reference's operation order) and the int32 accumulators against an int64 matmul, over
awkward shapes; requantization bit-exact; bad input; CUDA-graph capture; torch.compile(fullgraph=True) and
mode="reduce-overhead". Every kernel configuration is also checked by the standalone harness
(benchmarks/int8_gemm_harness.cu, run by benchmarks/gpu_int8_gemm.sh).
CPU tests (skipped where nvcc is absent): every .cu in csrc/ compiles for sm_90a and sm_80; the host-side kernel plan
(plan.cpp) only ever picks a kernel the device supports, with a valid split.
"""
import concurrent.futures
import os
import pathlib
import shutil
import subprocess

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"


# ---------------------------------------------------------------------------------------------- compile (CPU)

def _nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    candidate = pathlib.Path(home) / "bin" / "nvcc"
    return str(candidate) if candidate.exists() else None


def _kernel_units():
    """Torch-free kernel translation units (bindings need torch headers; tools are not part of the extension)."""
    return sorted(p for p in CSRC.rglob("*.cu") if "bindings" not in p.parts and "tools" not in p.parts)


def test_kernel_units_compile_for_sm90a_and_sm80(tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    units = _kernel_units()
    assert units, "no kernel units found under csrc/"
    # -Xptxas -O1 keeps ptxas's checks (wgmma shapes, setmaxnreg, register limits) at a fraction of the -O3 time.
    flags = ["-std=c++17", f"-I{CSRC}", "-gencode", "arch=compute_90a,code=sm_90a", "-gencode",
             "arch=compute_80,code=sm_80", "-Xptxas", "-O1"]

    def compile_one(unit):
        out = tmp_path / (unit.name + ".o")
        r = subprocess.run([nvcc, *flags, "-c", str(unit), "-o", str(out)], capture_output=True, text=True)
        return unit, r.returncode, r.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(compile_one, units))
    failed = [f"{u.relative_to(ROOT)}:\n{err[-3000:]}" for u, rc, err in results if rc != 0]
    assert not failed, "nvcc failed:\n" + "\n".join(failed)


PLAN_MAIN = r"""
#include <cstdio>
#include "int8_gemm/int8_gemm.h"
using namespace qtorch_int8;
namespace qtorch_int8 {  // launchers are not exercised here
cudaError_t launch_sm90(const GemmProblem&, Kernel, int, int, cudaStream_t) { return cudaErrorUnknown; }
cudaError_t launch_sm80(const GemmProblem&, cudaStream_t) { return cudaErrorUnknown; }
cudaError_t launch_gemv(const GemmProblem&, Kernel, cudaStream_t) { return cudaErrorUnknown; }
}
int main() {
  int M, N, K, major, minor, sms;
  while (scanf("%d %d %d %d %d %d", &M, &N, &K, &major, &minor, &sms) == 6) {
    const LaunchPlan p = choose_plan(M, N, K, major, minor, sms);
    printf("%s %d %d\n", kernel_name(p.kernel), p.split_k, kernel_supported(p.kernel, major, minor, M) ? 1 : 0);
  }
}
"""


def test_plan_choices(tmp_path):
    """choose_plan (host, torch-free): every plan is a kernel the device supports, with a valid split."""
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    main = tmp_path / "plan_main.cpp"
    main.write_text(PLAN_MAIN)
    exe = tmp_path / "plan_main"
    r = subprocess.run([nvcc, "-std=c++17", f"-I{CSRC}", str(main), str(CSRC / "int8_gemm" / "plan.cpp"), "-o",
                        str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    cases = [(M, N, K, major, minor, sms)
             for M in (1, 7, 16, 17, 32, 33, 64, 100, 128, 512, 2048, 4099, 8192)
             for (N, K) in ((4096, 4096), (11008, 4096), (4096, 11008), (16, 16), (272, 1040), (32000, 4096))
             for (major, minor, sms) in ((9, 0, 132), (8, 0, 108), (8, 9, 58))]
    cases += [(128, 4096, 4096, 7, 5, 40), (128, 4096, 4096, 10, 0, 148), (128, 4096, 4096, 9, 1, 132)]
    stdin = "".join(" ".join(map(str, c)) + "\n" for c in cases)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout.split("\n")
    for (M, N, K, major, minor, sms), line in zip(cases, out):
        name, split, supported = line.split()
        split = int(split)
        if (major, minor) not in ((9, 0), (8, 0), (8, 9)):
            assert name == "none", (M, N, K, major, minor, line)
            continue
        assert supported == "1", (M, N, K, major, minor, line)
        k_blocks = -(-K // 128)
        assert 1 <= split <= 4 and (split == 1 or k_blocks >= 2 * split), line
        if M <= 16 or (M <= 32 and (major != 9 or N < 8192)):
            assert name.startswith("gemv"), (M, line)
        elif major == 9 and M <= 256 and -(-M // 64) * -(-N // 128) <= sms:  # one wave of 64x128 tiles
            assert name == "sm90_64x128", (M, N, line)
            assert split == (2 if 2 * -(-M // 64) * -(-N // 128) <= sms and k_blocks >= 4 else 1), (M, N, K, line)
        elif M <= 32:  # 17..32 rows on sm_90, N >= 8192 with more 64x128 tiles than SMs: 64x256 split-K 2
            assert (name, split) == ("sm90_64x256", 2), (M, N, line)
        elif major == 8:
            assert name == "sm80_128x128", line
        else:
            assert name.startswith("sm90"), line
            assert split == 1 or not name.startswith("sm90pp"), line


# ---------------------------------------------------------------------------------------------- GPU

cuda = pytest.mark.cuda


@pytest.fixture(scope="module")
def ops():
    import qtorch
    import qtorch.ops as qops
    from qtorch._ext import extension_error

    assert qtorch.cuda_kernels_available(), f"qtorch._C did not load: {extension_error()}"
    return qops


def _random_int8(*shape, device="cuda"):
    return torch.randint(-128, 128, shape, dtype=torch.int8, device=device)


def _scaled_mm_inputs(M, N, K, *, w_zp, bias_dtype, device="cuda"):
    x_q = _random_int8(M, K, device=device)
    w_q = _random_int8(N, K, device=device)
    args = dict(
        x_q=x_q,
        x_scale=torch.rand(M, device=device) * 0.05 + 1e-3,
        x_zp=torch.randint(-128, 128, (M,), dtype=torch.int32, device=device),
        w_q=w_q,
        w_scale=torch.rand(N, device=device) * 0.02 + 5e-4,
        w_colsum=w_q.sum(dim=1, dtype=torch.int32),
        # |Z_W| <= 16 keeps K*Z_X*Z_W*S_X*S_W inside fp16's range (the harness covers the full int8 range)
        w_zp=torch.randint(-16, 17, (N,), dtype=torch.int32, device=device) if w_zp else None,
        bias=(torch.randn(N, device=device) * 4).to(bias_dtype) if bias_dtype is not None else None,
    )
    return args


def _call_scaled_mm(ops, a, out_dtype):
    return ops.int8_scaled_mm(a["x_q"], a["x_scale"], a["x_zp"], a["w_q"], a["w_scale"], a["w_colsum"], a["w_zp"],
                              a["bias"], out_dtype)


def _to_cpu(a):
    return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in a.items()}


SHAPES = [(M, N, K) for M in (1, 7, 17, 100, 4099) for (N, K) in ((48, 80), (272, 1040), (4096, 4096))]
SHAPES += [(1, 11008, 4096), (100, 4096, 11008), (333, 2064, 8192)]


@cuda
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_accumulators_exact_against_int64(ops, M, N, K):
    """Unit scales, zero points and no bias: y = float(acc), exact while |acc| < 2^24 (random int8 data); the
    reference is an exact integer product (float64 holds every partial sum exactly)."""
    x_q, w_q = _random_int8(M, K), _random_int8(N, K)
    ones_m, ones_n = torch.ones(M, device="cuda"), torch.ones(N, device="cuda")
    zeros_m = torch.zeros(M, dtype=torch.int32, device="cuda")
    y = ops.int8_scaled_mm(x_q, ones_m, zeros_m, w_q, ones_n, w_q.sum(dim=1, dtype=torch.int32), None, None,
                           torch.float32)
    ref = (x_q.double() @ w_q.double().t()).to(torch.int64)  # (M, N) exact: integers far below 2^53
    assert ref.abs().max() < 2 ** 24
    assert torch.equal(y.to(torch.int64), ref)


@cuda
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("out_dtype,w_zp,bias_dtype", [
    (torch.bfloat16, False, torch.bfloat16),  # the W8A8 dynamic path of QuantLinear
    (torch.float16, True, torch.float32),     # general Z_W != 0 correction (row sums in the kernel)
    (torch.float32, False, None),
    (torch.float32, True, torch.float16),
])
def test_scaled_mm_matches_cpu_reference(ops, M, N, K, out_dtype, w_zp, bias_dtype):
    a = _scaled_mm_inputs(M, N, K, w_zp=w_zp, bias_dtype=bias_dtype)
    y = _call_scaled_mm(ops, a, out_dtype)
    assert y.shape == (M, N) and y.dtype == out_dtype and y.is_cuda
    ref = _call_scaled_mm(ops, _to_cpu(a), out_dtype)  # CPU reference op on the same inputs
    y = y.cpu()
    assert not torch.isnan(y).any()
    diff = (y.float() - ref.float()).abs()
    assert torch.equal(y, ref), (f"{int((diff > 0).sum())} of {y.numel()} elements differ from the CPU reference, "
                                 f"max |diff| {float(diff.max()):.3g}")


@cuda
@pytest.mark.parametrize("M,N,K", [(1, 48, 80), (7, 272, 1040), (17, 4096, 4096), (100, 272, 1040),
                                   (4099, 1024, 2048), (333, 2064, 8192)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_requant_bit_exact(ops, M, N, K, with_bias):
    from qtorch.quant.fixed_point import quantize_multiplier

    x_q, w_q = _random_int8(M, K), _random_int8(N, K)
    w_zp = torch.randint(-128, 128, (N,), dtype=torch.int32, device="cuda")
    w_colsum = w_q.sum(dim=1, dtype=torch.int32)
    bias_q = torch.randint(-200000, 200000, (N,), dtype=torch.int32, device="cuda") if with_bias else None
    # Real multipliers S_W S_X / S_Y spanning left shifts (M >= 1) and deep right shifts.
    real = torch.exp(torch.empty(N, dtype=torch.float64).uniform_(-14.0, 1.5))
    multiplier, shift = quantize_multiplier(real)
    multiplier, shift = multiplier.cuda(), shift.cuda()
    x_zp, y_zp = -3, 11
    q = ops.int8_linear_requant(x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp)
    assert q.dtype == torch.int8 and q.shape == (M, N)
    cpu = [t.cpu() if isinstance(t, torch.Tensor) else t for t in
           (x_q, x_zp, w_q, w_zp, w_colsum, bias_q, multiplier, shift, y_zp)]
    ref = ops.int8_linear_requant(*cpu)
    assert torch.equal(q.cpu(), ref), f"{int((q.cpu() != ref).sum())} of {q.numel()} int8 outputs differ"


@cuda
def test_empty_rows(ops):
    a = _scaled_mm_inputs(0, 64, 128, w_zp=False, bias_dtype=None)
    y = _call_scaled_mm(ops, a, torch.bfloat16)
    assert y.shape == (0, 64) and y.dtype == torch.bfloat16


@cuda
def test_runs_on_the_current_stream(ops):
    a = _scaled_mm_inputs(100, 272, 1040, w_zp=True, bias_dtype=torch.bfloat16)
    expected = _call_scaled_mm(ops, a, torch.bfloat16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = _call_scaled_mm(ops, a, torch.bfloat16)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(y, expected)


# ---------------------------------------------------------------------------------------------- bad input

def _good(M=32, N=64, K=128):
    return _scaled_mm_inputs(M, N, K, w_zp=False, bias_dtype=torch.bfloat16)


@cuda
# The op's contract (qtorch.ops.int8_matmul.check_scaled_mm, the same on every device) is checked in Python before
# the private C++ op runs: shape / device errors are ValueErrors, dtype errors TypeErrors.
@pytest.mark.parametrize("field,value,exc,match", [
    ("x_q", lambda a: a["x_q"].float(), TypeError, "x_q"),
    ("w_q", lambda a: a["w_q"].to(torch.int32), TypeError, "w_q"),
    ("x_scale", lambda a: a["x_scale"].double(), TypeError, "x_scale"),
    ("x_scale", lambda a: a["x_scale"][:-1], ValueError, "x_scale"),
    ("x_zp", lambda a: a["x_zp"].float(), TypeError, "x_zp"),
    ("w_scale", lambda a: torch.ones(65, device="cuda"), ValueError, "w_scale"),
    ("w_colsum", lambda a: a["w_colsum"].to(torch.int64), TypeError, "w_colsum"),
    ("w_zp", lambda a: torch.zeros(63, dtype=torch.int32, device="cuda"), ValueError, "w_zp"),
    ("bias", lambda a: a["bias"].to(torch.float64), TypeError, "bias"),
    ("bias", lambda a: a["bias"][:32], ValueError, "bias"),
    ("x_scale", lambda a: a["x_scale"].cpu(), ValueError, "x_scale"),
    ("w_q", lambda a: a["w_q"].cpu(), ValueError, "w_q"),
])
def test_bad_arguments_raise(ops, field, value, exc, match):
    a = _good()
    a[field] = value(a)
    with pytest.raises(exc, match=match):
        _call_scaled_mm(ops, a, torch.bfloat16)
    torch.cuda.synchronize()  # no asynchronous fault left behind


@cuda
def test_bad_shapes_raise(ops):
    a = _good()
    a["w_q"] = _random_int8(64, 144)  # K mismatch
    with pytest.raises(ValueError, match="w_q"):
        _call_scaled_mm(ops, a, torch.bfloat16)
    a = _good()
    with pytest.raises(TypeError, match="out_dtype"):
        _call_scaled_mm(ops, a, torch.int32)


def _misaligned(t):
    """A contiguous copy of t starting 1 byte past a 16-byte boundary."""
    storage = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    view = storage[1:].view(t.shape)
    view.copy_(t)
    return view


# The op accepts the same inputs on every device: shapes the kernels do not tile (N or K not a multiple of 16) and
# strided or unaligned operands run on padded copies, bit-exact with the CPU reference.
@cuda
@pytest.mark.parametrize("M,N,K", [(8, 64, 72), (8, 40, 64), (17, 200, 100), (5, 24, 24), (0, 40, 72)])
@pytest.mark.parametrize("w_zp", [False, True])
def test_untiled_shapes_match_the_cpu_reference(ops, M, N, K, w_zp):
    a = _scaled_mm_inputs(M, N, K, w_zp=w_zp, bias_dtype=torch.bfloat16)
    y = _call_scaled_mm(ops, a, torch.float32)
    assert y.shape == (M, N)
    assert torch.equal(y.cpu(), _call_scaled_mm(ops, _to_cpu(a), torch.float32))


@cuda
@pytest.mark.parametrize("make", [lambda t: t.t().contiguous().t(), _misaligned], ids=["column_major", "misaligned"])
def test_strided_or_unaligned_operands_match_the_cpu_reference(ops, make):
    a = _scaled_mm_inputs(32, 64, 128, w_zp=True, bias_dtype=None)
    expected = _call_scaled_mm(ops, _to_cpu(a), torch.float32)
    a["x_q"] = make(a["x_q"])
    assert torch.equal(_call_scaled_mm(ops, a, torch.float32).cpu(), expected)


@cuda
def test_requant_untiled_shape_is_bit_exact(ops):
    from qtorch.quant.fixed_point import quantize_multiplier

    M, N, K = 9, 200, 100
    x_q, w_q = _random_int8(M, K), _random_int8(N, K)
    w_zp = torch.randint(-128, 128, (N,), dtype=torch.int32, device="cuda")
    multiplier, shift = quantize_multiplier(torch.exp(torch.empty(N, dtype=torch.float64).uniform_(-10.0, 0.5)))
    args = (x_q, -7, w_q, w_zp, w_q.sum(dim=1, dtype=torch.int32),
            torch.randint(-9999, 9999, (N,), dtype=torch.int32, device="cuda"), multiplier.cuda(), shift.cuda(), 5)
    q = ops.int8_linear_requant(*args)
    ref = ops.int8_linear_requant(*[t.cpu() if isinstance(t, torch.Tensor) else t for t in args])
    assert torch.equal(q.cpu(), ref)


@cuda
def test_requant_bad_zero_point_raises(ops):
    x_q, w_q = _random_int8(4, 64), _random_int8(32, 64)
    v = torch.zeros(32, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="y_zp"):
        ops.int8_linear_requant(x_q, 0, w_q, v, v, None, v + (1 << 30), v, 300)


# ---------------------------------------------------------------------------------------------- graphs / compile

@cuda
def test_cuda_graph_capture_and_replay(ops):
    M, N, K = 64, 512, 1024
    a = _scaled_mm_inputs(M, N, K, w_zp=False, bias_dtype=torch.bfloat16)
    _call_scaled_mm(ops, a, torch.bfloat16)  # warm-up outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = _call_scaled_mm(ops, a, torch.bfloat16)
    for _ in range(3):
        a["x_q"].copy_(_random_int8(M, K))
        a["x_scale"].copy_(torch.rand(M, device="cuda") + 0.01)
        graph.replay()
        torch.cuda.synchronize()
        ref = _call_scaled_mm(ops, _to_cpu(a), torch.bfloat16)
        assert torch.equal(y.cpu(), ref)


def _w8a8(ops, x, w_q, w_scale, w_colsum, bias):
    x_q, x_scale, x_zp = ops.quantize_per_token(x)
    return ops.int8_scaled_mm(x_q, x_scale, x_zp, w_q, w_scale, w_colsum, None, bias, x.dtype)


@cuda
@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_torch_compile_fullgraph(ops, mode):
    torch._dynamo.reset()
    N, K = 256, 512
    w_q = _random_int8(N, K)
    w_scale = torch.rand(N, device="cuda") * 0.01 + 1e-3
    w_colsum = w_q.sum(dim=1, dtype=torch.int32)
    bias = torch.randn(N, device="cuda", dtype=torch.bfloat16)
    fn = torch.compile(lambda x: _w8a8(ops, x, w_q, w_scale, w_colsum, bias), fullgraph=True, mode=mode)
    for M in (1, 17, 64):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):  # reduce-overhead records a graph after warm-up runs
            y = fn(x)
        assert torch.equal(y, _w8a8(ops, x, w_q, w_scale, w_colsum, bias))


@cuda
def test_quantlinear_w8a8_runs_the_kernel(ops):
    """QuantLinear W8A8 on CUDA goes through qtorch._C (no reference-fallback warning) and matches the CPU module."""
    import warnings

    import qtorch.config
    from qtorch.nn import QuantLinear

    lin = torch.nn.Linear(1024, 512, bias=True).to(torch.bfloat16)
    q = QuantLinear.from_float(lin, qtorch.config.W8A8DynamicConfig())
    x = torch.randn(3, 5, 1024, dtype=torch.bfloat16)
    ref = q(x)
    q_cuda = q.cuda()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y = q_cuda(x.cuda())
    assert y.shape == (3, 5, 512) and y.dtype == torch.bfloat16
    assert torch.equal(y.cpu(), ref)
