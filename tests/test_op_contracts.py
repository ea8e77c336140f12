"""Each qtorch:: op's contract, one place: the inputs it accepts and rejects, and that every implementation agrees
on both (fake impl, CPU reference, CUDA when present) with integer results bit-exact."""
import pytest
import torch

import qtorch.ops as qops
from qtorch.ops import int8_matmul, routing
from qtorch.quant import quantize_multiplier


def int8(*shape):
    return torch.randint(-128, 128, shape, dtype=torch.int8)


def scaled_mm_args(m, n, k, w_zp=True, bias=True, out_dtype=torch.float32):
    w_q = int8(n, k)
    return (int8(m, k), torch.rand(m) + 0.01, torch.randint(-128, 128, (m,), dtype=torch.int32), w_q,
            torch.rand(n) + 0.01, w_q.sum(1, dtype=torch.int32),
            torch.randint(-5, 5, (n,), dtype=torch.int32) if w_zp else None,
            torch.randn(n, dtype=out_dtype) if bias else None, out_dtype)


def requant_args(m, n, k, bias=True):
    w_q = int8(n, k)
    multiplier, shift = quantize_multiplier(torch.rand(n, dtype=torch.float64) * 1e-3 + 1e-4)
    return (int8(m, k), 3, w_q, torch.randint(-5, 5, (n,), dtype=torch.int32), w_q.sum(1, dtype=torch.int32),
            torch.randint(-1000, 1000, (n,), dtype=torch.int32) if bias else None, multiplier, shift, -7)


def _aligned_only(reference, x_at, w_at):
    """The reference standing in for the C++ kernel, refusing what the kernel refuses."""
    def kernel(*args):
        x_q, w_q = args[x_at], args[w_at]
        assert x_q.shape[1] % 16 == 0 and x_q.shape[1] > 0 and w_q.shape[0] % 16 == 0
        return reference(*args)
    return kernel


@pytest.mark.parametrize("m,n,k", [(0, 200, 48), (1, 200, 40), (17, 24, 1), (5, 16, 0), (3, 0, 20)])
def test_int8_padded_route_is_exact(m, n, k):
    """Zero padding N and K to multiples of 16 gives the unpadded result exactly (w_zp's K·Z_X·Z_W term included)."""
    torch.manual_seed(m * 1000 + n + k)
    args = scaled_mm_args(m, n, k)
    kernel = _aligned_only(int8_matmul.int8_scaled_mm_reference, 0, 3)
    with pytest.warns(RuntimeWarning, match=f"N = {n}, K = {k}"):
        padded = int8_matmul.int8_scaled_mm_padded(*args, kernel=kernel)
    assert padded.is_contiguous()
    assert torch.equal(padded, int8_matmul.int8_scaled_mm_reference(*args))
    args = requant_args(m, n, k)
    kernel = _aligned_only(int8_matmul.int8_linear_requant_reference, 0, 2)
    with pytest.warns(RuntimeWarning, match=f"N = {n}, K = {k}"):
        padded = int8_matmul.int8_linear_requant_padded(*args, kernel=kernel)
    assert torch.equal(padded, int8_matmul.int8_linear_requant_reference(*args))


@pytest.mark.parametrize("n,k,aligned,expected", [(32, 64, True, "cuda_int8"), (200, 64, True, "cuda_int8_padded"),
                                                  (32, 8, True, "cuda_int8_padded"),
                                                  (32, 64, False, "cuda_int8_padded")])
def test_int8_cuda_routing(monkeypatch, n, k, aligned, expected):
    """With qtorch._C, aligned shapes take the kernel and every other shape the padded route; without, the reference."""
    monkeypatch.setattr(int8_matmul, "load_extension", lambda: True)
    for op in ("int8_scaled_mm", "int8_linear_requant"):
        assert routing.select(op, device="cuda", n=n, k=k, aligned=aligned).name == expected
    monkeypatch.setattr(int8_matmul, "load_extension", lambda: False)
    assert routing.select("int8_scaled_mm", device="cuda", n=n, k=k, aligned=aligned).name == "reference_cuda"


def test_force_backend_names_the_reason(monkeypatch):
    monkeypatch.setattr(int8_matmul, "load_extension", lambda: True)
    with qops.force_backend("int8_scaled_mm", "cuda_int8"):
        with pytest.raises(ValueError, match="cuda_int8.*N = 200"):
            routing.select("int8_scaled_mm", device="cuda", n=200, k=64, aligned=True)
        with pytest.raises(ValueError, match="runs on"):
            routing.select("int8_scaled_mm", device="cpu", n=32, k=64, aligned=True)
    with pytest.raises(ValueError, match="backend_name"):
        with qops.force_backend("int8_scaled_mm", "nope"):
            pass


@pytest.mark.cuda
@pytest.mark.parametrize("m,n,k", [(1, 200, 64), (17, 200, 40), (33, 24, 1), (0, 200, 48)])
def test_int8_ops_on_cuda_match_cpu_for_unaligned_shapes(m, n, k):
    torch.manual_seed(n + k + m)
    args = scaled_mm_args(m, n, k)
    cuda = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    torch.testing.assert_close(qops.int8_scaled_mm(*cuda).cpu(), qops.int8_scaled_mm(*args), rtol=1e-5, atol=1e-4)
    args = requant_args(m, n, k)
    cuda = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    assert torch.equal(qops.int8_linear_requant(*cuda).cpu(), qops.int8_linear_requant(*args))
