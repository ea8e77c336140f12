"""The CUDA kernels of qtorch::quantize_per_token and qtorch::quantize_per_tensor (csrc/act_quant, forced with
qtorch.ops.force_backend): bit-exact with the PyTorch references on awkward shapes and edge rows, NaN policy, no host
synchronisation, CUDA-graph capture."""
import pytest
import torch

import qtorch.ops as qops
from qtorch.ops.activation import quantize_per_tensor_reference, quantize_per_token_reference

pytestmark = pytest.mark.cuda

DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def per_token(x):
    with qops.force_backend("quantize_per_token", "cuda_kernel"):
        return qops.quantize_per_token(x)


def per_tensor(x, scale, zp):
    with qops.force_backend("quantize_per_tensor", "cuda_kernel"):
        return qops.quantize_per_tensor(x, scale, zp)


def _same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def check_per_token(x):
    """Bit-exact with the reference on the rows that are finite; a NaN row has a NaN scale."""
    q, scale, zp = per_token(x)
    q_ref, scale_ref, zp_ref = quantize_per_token_reference(x.cpu())
    assert (q.dtype, scale.dtype, zp.dtype) == (torch.int8, torch.float32, torch.int32)
    assert q.shape == x.shape and scale.shape == zp.shape == (x.shape[0],)
    _same(scale.cpu(), scale_ref)
    finite = torch.isfinite(scale_ref)
    assert torch.equal(zp.cpu()[finite], zp_ref[finite])
    assert torch.equal(q.cpu()[finite], q_ref[finite])


def with_ties(x):
    """x with exact rint ties and the range's end points in row 0."""
    k = min(x.shape[1], 7)
    if x.shape[0]:
        x[0, :k] = torch.tensor([0.5, 1.5, -2.5, 100.0, -100.0, 0.0, 3.0])[:k].to(x.dtype)
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (17, 200), (1, 4096), (17, 11008), (4099, 4096), (5, 40000),
                                   (2, 14336), (0, 8)])
def test_per_token_matches_reference(dtype, shape):
    torch.manual_seed(shape[0] * 7 + shape[1])
    check_per_token(with_ties((torch.randn(shape) * 4 + 0.3).to(dtype)).cuda())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_per_token_edge_rows():
    x = torch.tensor([
        [0.0] * 6,  # S == 0 -> S = 1, Z = -128
        [1e-30, 2e-30, 0.0, 3e-30, 0.0, 1e-30],  # S below the fast-division range
        [1e4, -3e4, 2.5e4, 0.0, 7.0, -1.0],
        [0.25, 0.5, 0.75, 1.0, 1.25, 255.0],  # S = 1: ties
        [-255.0, -0.5, -1.5, -2.5, -127.5, -128.5],
        [3e38, -3e38, 1.0, -1.0, 0.0, 2.0],  # r_max - r_min overflows: S = inf
        [0.5, float("nan"), 1.5, -1.5, 2.5, -2.5],  # NaN row: NaN scale
        [float("inf"), 1.0, 0.0, 0.0, 0.0, 0.0],
    ])
    check_per_token(x.cuda())
    check_per_token(x[:6].to(torch.bfloat16).cuda())
    assert torch.isnan(per_token(x.cuda())[1][6])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_per_token_strided_rows(dtype):
    base = (torch.randn(23, 77) * 5).to(dtype).cuda()
    check_per_token(base[::3, 2:70])  # rows start at odd offsets: the scalar-load kernel
    check_per_token(torch.randn(9, 512).to(dtype).cuda()[:, :256])  # aligned row stride: 16-byte loads


def check_per_tensor(x, scale, zp):
    q, row_scale = per_tensor(x, scale, zp)
    q_ref, row_scale_ref = quantize_per_tensor_reference(x.cpu(), scale.cpu(), zp.cpu())
    assert (q.dtype, row_scale.dtype, q.shape, row_scale.shape) == (torch.int8, torch.float32, x.shape, (x.shape[0],))
    _same(row_scale.cpu(), row_scale_ref)
    finite = ~torch.isnan(row_scale_ref)
    assert torch.equal(q.cpu()[finite], q_ref[finite])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (17, 200), (4099, 4096), (3, 11008), (0, 16)])
@pytest.mark.parametrize("s, z", [(0.03, -5), (1.0, 0), (1e-30, 7), (2.5e19, -128)])
def test_per_tensor_matches_reference(dtype, shape, s, z):
    torch.manual_seed(shape[0] + shape[1])
    x = with_ties((torch.randn(shape) * 4).to(dtype)).cuda()
    check_per_tensor(x, torch.tensor([s], device="cuda"), torch.tensor([z], dtype=torch.int32, device="cuda"))


def test_per_tensor_non_finite_rows_and_strides():
    x = torch.randn(6, 80) * 3
    x[1, 5], x[3, 0], x[4, 79] = float("nan"), float("inf"), -float("inf")
    scale, zp = torch.tensor([0.05], device="cuda"), torch.tensor([3], dtype=torch.int32, device="cuda")
    q, row_scale = per_tensor(x.cuda(), scale, zp)
    assert torch.isnan(row_scale.cpu()[[1, 3, 4]]).all() and (row_scale.cpu()[[0, 2, 5]] == 0.05).all()
    check_per_tensor(x.cuda(), scale, zp)
    check_per_tensor(x.to(torch.bfloat16).cuda()[::2, 3:50], scale, zp)


def test_no_host_sync_and_graph_capture():
    x = torch.randn(16, 4096, device="cuda", dtype=torch.bfloat16)
    scale, zp = torch.tensor([0.02], device="cuda"), torch.tensor([1], dtype=torch.int32, device="cuda")
    per_token(x), per_tensor(x, scale, zp)  # warm up outside the checks
    torch.cuda.set_sync_debug_mode("error")
    try:
        per_token(x), per_tensor(x, scale, zp)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out_token, out_tensor = per_token(x), per_tensor(x, scale, zp)
    x.copy_(torch.randn_like(x) * 7)
    graph.replay()
    torch.cuda.synchronize()
    ref_token, ref_tensor = per_token(x), per_tensor(x, scale, zp)
    for got, ref in zip(out_token + out_tensor, ref_token + ref_tensor):
        assert torch.equal(got, ref)


def test_routing_of_the_cuda_kernels():
    """Eager calls of up to EAGER_KERNEL_MAX_M rows take the C++ kernel (one launch from C++, no Triton launcher);
    larger M and compiled graphs take Triton's (faster on the GPU); quantize_per_tensor always the C++ kernel."""
    from qtorch.ops import routing

    assert routing.select("quantize_per_token", device="cuda", traced=False, small_m=True).name == "cuda_kernel"
    assert routing.select("quantize_per_token", device="cuda", traced=False, small_m=False).name == "triton"
    assert routing.select("quantize_per_token", device="cuda", traced=True, small_m=False).name == "triton"
    assert routing.select("quantize_per_tensor", device="cuda").name == "cuda_kernel"
