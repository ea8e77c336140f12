"""qtorch::weight_only_linear's backends: y = x · dequant(W_q)ᵀ + bias through each Triton kernel (GEMV, tl.dot,
swapped) and the dequantize + cuBLAS route, int4 and int8, each forced with qtorch.ops.force_backend.

Error criterion: |y − y64| no larger than twice the error of the same-precision PyTorch computation
(F.linear in x's dtype on the dequantized weight) against float64, on fresh random data of awkward shapes.
"""
import pytest
import torch
import torch.nn.functional as F
from test_triton_reference import group_dequantize_ref, group_quantize_ref

import qtorch.ops as qops
from qtorch.ops import routing, weight_only
from triton_kernels import weight_only_gemv, weight_only_mma

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _case(m, n, k, bits, group_size, dtype, symmetric=False, bias=True, device=DEVICE):
    w = torch.randn(n, k, device=device) * 0.05
    q, scale, zp = group_quantize_ref(w, bits, group_size, symmetric)
    x = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(n, device=device).to(dtype) if bias else None
    return x, q, scale, zp, b


def _run(x, q, scale, zp, bits, group_size, b, backend=None):
    """The op, on the backend named (the routing table's choice when None)."""
    if backend is None:
        return qops.weight_only_linear(x, q, scale, zp, bits, group_size, b)
    with qops.force_backend("weight_only_linear", backend):
        return qops.weight_only_linear(x, q, scale, zp, bits, group_size, b)


def _check(x, q, scale, zp, bits, group_size, b, backend=None):
    y = _run(x, q, scale, zp, bits, group_size, b, backend)
    assert y.dtype == x.dtype and y.shape == (x.shape[0], q.shape[0])
    w64 = group_dequantize_ref(q, scale, zp, bits, group_size, torch.float64)
    y64 = x.double() @ w64.t() + (b.double() if b is not None else 0.0)
    same_precision = F.linear(x, w64.to(x.dtype), b)  # the PyTorch computation in x's precision
    err = (y.double() - y64).abs().max().item()
    err_ref = (same_precision.double() - y64).abs().max().item()
    assert y64.abs().max() > 0
    assert err <= 2 * err_ref + 1e-12, f"error {err:.3g} vs same-precision PyTorch {err_ref:.3g}"


@pytest.mark.parametrize("path", ["triton_gemv", "triton_mma"])
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("m, n, k, group_size", [(1, 40, 256, 128), (3, 33, 512, 64), (2, 17, 256, 32)])
def test_matches_reference_bf16(path, bits, m, n, k, group_size):
    x, q, scale, zp, b = _case(m, n, k, bits, group_size, torch.bfloat16)
    _check(x, q, scale, zp, bits, group_size, b, path)


@pytest.mark.parametrize("path", ["triton_gemv", "triton_mma"])
def test_fp16_symmetric_no_bias(path):
    x, q, scale, zp, b = _case(2, 24, 256, 4, 128, torch.float16, symmetric=True, bias=False)
    _check(x, q, scale, zp, 4, 128, b, path)


def test_mma_ragged_m_and_fp32_activations():
    x, q, scale, zp, b = _case(19, 20, 128, 8, 64, torch.float32)
    _check(x, q, scale, zp, 8, 64, b, "triton_mma")  # the tl.dot kernel in IEEE fp32
    assert _select(x, q, scale, 8, 64).name == "triton_mma"  # fp32 x: no word-reading kernel


@pytest.mark.parametrize("path", ["triton_gemv", "triton_mma"])
def test_per_channel_int8_group_is_k(path):
    x, q, scale, zp, b = _case(2, 12, 136, 8, 136, torch.bfloat16)  # K = 136 is no multiple of the K tile
    _check(x, q, scale, zp, 8, 136, b, path)


def test_group_size_without_a_tile_per_group():
    x, q, scale, zp, b = _case(3, 10, 96, 4, 48, torch.bfloat16)  # g = 48: per-element dequantization in tl.dot
    _check(x, q, scale, zp, 4, 48, b, "triton_mma")
    assert _select(x, q, scale, 4, 48).name == "triton_mma"
    with pytest.raises(ValueError, match="triton_gemv.*group size"):
        _run(x, q, scale, zp, 4, 48, b, "triton_gemv")


def test_empty_and_strided_inputs():
    x, q, scale, zp, b = _case(4, 16, 128, 4, 64, torch.bfloat16)
    assert _run(x[:0], q, scale, zp, 4, 64, b).shape == (0, 16)
    wide = torch.randn(2, 256, device=DEVICE).to(torch.bfloat16)[:, ::2]  # (2, 128) with stride 2 along K
    for backend in (None, "triton_gemv", "triton_mma_swapped", "triton_mma"):
        _check(wide, q, scale, zp, 4, 64, b, backend)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m, n, k, group_size, bias", [
    (5, 80, 256, 128, True),  # N = 80: a ragged BLOCK_N tile; split K over 2 tiles
    (16, 200, 512, 64, False),
    (17, 80, 384, 32, True),
    (33, 200, 256, 256, True),  # per channel: one scale after the K loop
    (64, 80, 200, 200, False),  # per channel with K = 200 ragged against BLOCK_K = 128
])
def test_mma_swapped(bits, dtype, m, n, k, group_size, bias):
    x, q, scale, zp, b = _case(m, n, k, bits, group_size, dtype, bias=bias)
    _check(x, q, scale, zp, bits, group_size, b, "triton_mma_swapped")


@pytest.mark.parametrize("target, m", [(1, 5), (1 << 20, 40)])
def test_mma_swapped_split_k_extremes(monkeypatch, target, m):
    """One program along K (no workspace) and the largest split; the table's choice for GEMV_MAX_M < M <= 64."""
    monkeypatch.setattr(weight_only_mma, "SWAPPED_TARGET_PROGRAMS", target)
    x, q, scale, zp, b = _case(m, 72, 1024, 4, 128, torch.bfloat16)
    assert weight_only_mma.swapped_split_k(72, 1024, 128) == (1 if target == 1 else weight_only_mma.SWAPPED_MAX_SPLIT_K)
    assert _select(x, q, scale, 4, 128).name == "triton_mma_swapped"
    _check(x, q, scale, zp, 4, 128, b, "triton_mma_swapped")


@pytest.mark.parametrize("target, bits, m, k, group_size", [
    (1, 4, 1, 1024, 128),  # one program along K: y written directly
    (1 << 20, 4, 3, 1024, 128),  # the largest split: 8 programs of 16 words per row
    (1 << 20, 4, 2, 1056, 32),  # 132 words in splits of 32: the last splits are empty (their partial sums are 0)
    (1 << 20, 8, 1, 520, 520),  # int8 per channel, 130 words: a split ends inside a 16-byte chunk's row tail
])
def test_gemv_split_k(monkeypatch, target, bits, m, k, group_size):
    """GEMV with K split over programs (fp32 slices summed in order by reduce_splits) and without."""
    monkeypatch.setattr(weight_only_gemv, "GEMV_TARGET_PROGRAMS", target)
    monkeypatch.setattr(weight_only_gemv, "GEMV_MIN_SPLIT_WORDS", 8)
    split = weight_only_gemv.gemv_split_k(72, k * bits // 32)
    assert split == (1 if target == 1 else weight_only_gemv.GEMV_MAX_SPLIT_K)
    x, q, scale, zp, b = _case(m, 72, k, bits, group_size, torch.bfloat16)
    _check(x, q, scale, zp, bits, group_size, b, "triton_gemv")


@pytest.mark.parametrize("bits, k, group_size, dtype", [
    (4, 256, 128, torch.bfloat16),  # group_dequantize kernel
    (8, 136, 136, torch.bfloat16),  # per channel: group_dequantize's flat-index kernel
    (4, 96, 48, torch.float16),  # a group size that is no power of 2: the flat-index kernel, int4
    (8, 128, 64, torch.float32),
])
def test_dequant_path(bits, k, group_size, dtype):
    x, q, scale, zp, b = _case(9, 40, k, bits, group_size, dtype)
    _check(x, q, scale, zp, bits, group_size, b, "dequant_cublas")


def _select(x, q, scale, bits, group_size):
    """The backend the table picks for these shapes on CUDA (metadata only: runs on CPU tensors too)."""
    meta = weight_only.linear_meta(x, q, scale, bits, group_size, 0)
    return routing.select("weight_only_linear", **dict(meta, device="cuda"))


def test_the_table_picks_by_m(monkeypatch):
    monkeypatch.setattr(weight_only, "SWAPPED_MAX_M", 4)
    monkeypatch.setattr(weight_only, "DEQUANT_MIN_M", 8)
    routing.clear_cache()  # select remembers its answers per call shape
    picks = {m: _select(*_case(m, 24, 128, 4, 64, torch.bfloat16)[:3], 4, 64).name for m in (0, 1, 2, 7, 8)}
    routing.clear_cache()
    assert picks == {0: "empty", 1: "triton_gemv", 2: "triton_mma_swapped", 7: "triton_mma", 8: "dequant_cublas"}


def test_mma_swapped_unsupported():
    x, q, scale, zp, b = _case(8, 16, 96, 4, 48, torch.bfloat16)  # g = 48: no power-of-2 number of K tiles
    with pytest.raises(ValueError, match="triton_mma_swapped"):
        _run(x, q, scale, zp, 4, 48, b, "triton_mma_swapped")
    assert _select(x, q, scale, 4, 48).name == "triton_mma"  # the tl.dot kernel with x as the left operand
    x, q, scale, zp, b = _case(8, 16, 128, 8, 64, torch.float32)
    with pytest.raises(ValueError, match="triton_mma_swapped.*bf16"):
        _run(x, q, scale, zp, 8, 64, b, "triton_mma_swapped")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(bits=3), ValueError, "bits"),
        (dict(group_size=48), ValueError, "group_size"),
        (dict(x=torch.zeros(2, 100)), ValueError, "w_q: expected shape"),
        (dict(x=torch.zeros(2, 128, dtype=torch.int32)), TypeError, "x: expected dtype"),
        (dict(q=torch.zeros(8, 64, dtype=torch.int8)), TypeError, "w_q: expected dtype uint8"),
        (dict(scale=torch.zeros(8, 3)), ValueError, "w_scale"),
        (dict(zp=torch.zeros(8, 2, dtype=torch.int32)), TypeError, "w_zp: expected dtype int8"),
        (dict(b=torch.zeros(7)), ValueError, "bias"),
    ],
)
def test_bad_input(change, error, match):
    x, q, scale, zp, b = _case(2, 8, 128, 4, 64, torch.bfloat16, device="cpu")
    args = dict(x=x, q=q, scale=scale, zp=zp, bits=4, group_size=64, b=b)
    args.update({key: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for key, v in change.items()})
    args = {key: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for key, v in args.items()}
    with pytest.raises(error, match=match):
        _run(args["x"], args["q"], args["scale"], args["zp"], args["bits"], args["group_size"], args["b"])


@pytest.mark.cuda
@pytest.mark.parametrize("path", ["triton_gemv", "triton_mma", "triton_mma_swapped"])
@pytest.mark.parametrize("bits, group_size", [(4, 128), (4, 32), (8, 128), (8, None)])
@pytest.mark.parametrize("k, n", [(4096, 11008), (11008, 4096)])
@pytest.mark.parametrize("m", [1, 4, 17])
def test_llama_shapes_gpu(path, bits, group_size, k, n, m):
    if path == "triton_gemv" and m > weight_only.GEMV_MAX_M:
        pytest.skip("the GEMV kernel is for decode sizes")
    group_size = group_size or k  # None: per-channel int8
    x, q, scale, zp, b = _case(m, n, k, bits, group_size, torch.bfloat16, device="cuda")
    _check(x, q, scale, zp, bits, group_size, b, path)


@pytest.mark.cuda
@pytest.mark.parametrize("path", ["triton_gemv", "triton_mma", "triton_mma_swapped"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nan_row_gives_a_nan_row_gpu(path, dtype):
    """A NaN in the last row makes all of that row NaN (the GPU's canonical NaN must survive the fp32 -> bf16
    rounding); the other rows stay finite."""
    m = 1 if path == "triton_gemv" else 4
    x, q, scale, zp, b = _case(m, 40, 256, 4, 128, dtype, device="cuda")
    x[m - 1, 3] = float("nan")
    y = _run(x, q, scale, zp, 4, 128, b, path)
    assert torch.isnan(y[m - 1]).all()
    if m > 1:
        assert torch.isfinite(y[0]).all()


@pytest.mark.cuda
@pytest.mark.parametrize("m", [64, 256, 4099])
def test_large_m_gpu(m):
    x, q, scale, zp, b = _case(m, 4096, 4096, 4, 128, torch.float16, device="cuda")
    _check(x, q, scale, zp, 4, 128, b)


@pytest.mark.cuda
@pytest.mark.parametrize("m", [1, 16])  # the GEMV with its split-K reduction; the swapped tl.dot kernel
def test_torch_compile_traces_the_kernels(m):
    """Through the op (the way modules call it): torch.compile traces into the Triton kernels, fullgraph."""
    from qtorch.ops import weight_only_linear as op

    x, q, scale, zp, b = _case(m, 256, 512, 4, 128, torch.bfloat16, device="cuda")
    compiled = torch.compile(lambda *a: op(*a), fullgraph=True)
    torch.testing.assert_close(compiled(x, q, scale, zp, 4, 128, b), op(x, q, scale, zp, 4, 128, b))