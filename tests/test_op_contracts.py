"""Each qtorch:: op's contract, one place: the inputs it accepts and rejects, and that every implementation agrees
on both (fake impl, CPU reference, CUDA when present) with integer results bit-exact."""
import pytest
import torch

import qtorch.ops as qops
from qtorch.ops import _registry, int8_matmul, routing
from qtorch.quant import quantize_multiplier


def int8(*shape):
    return torch.randint(-128, 128, shape, dtype=torch.int8)


def scaled_mm_args(m, n, k, w_zp=True, bias=True, out_dtype=torch.float32):
    w_q = int8(n, k)
    return (int8(m, k), torch.rand(m) + 0.01, torch.randint(-128, 128, (m,), dtype=torch.int32), w_q,
            torch.rand(n) + 0.01, w_q.sum(1, dtype=torch.int32),
            torch.randint(-5, 5, (n,), dtype=torch.int32) if w_zp else None,
            torch.randn(n, dtype=out_dtype) if bias else None, out_dtype)


def per_tensor(args):
    """int8_scaled_mm arguments with one (S_X, Z_X) for every row: (1,) tensors."""
    return args[:1] + (torch.rand(1) + 0.01, torch.randint(-128, 128, (1,), dtype=torch.int32)) + args[3:]


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
    kernel = _aligned_only(int8_matmul.int8_linear_requant_reference, 0, 2)
    args = requant_args(m, n, k)
    for args in (args, args[:3] + (None,) + args[4:]):  # with Z_W, and without (None: Z_W = 0)
        padded = int8_matmul.int8_linear_requant_padded(*args, kernel=kernel)
        assert torch.equal(padded, int8_matmul.int8_linear_requant_reference(*args))


@pytest.mark.parametrize("n,k,aligned,expected", [(32, 64, True, "cuda_int8"), (200, 64, True, "cuda_int8_padded"),
                                                  (32, 8, True, "cuda_int8_padded"),
                                                  (32, 64, False, "cuda_int8_padded")])
def test_int8_cuda_routing(monkeypatch, n, k, aligned, expected):
    """With qtorch._C, aligned shapes take the kernel and every other shape the padded route; without, the reference."""
    monkeypatch.setattr(_registry, "load_extension", lambda: True)
    routing.clear_cache()  # select remembers its answers per call shape
    for op in ("int8_scaled_mm", "int8_linear_requant"):
        assert routing.select(op, device="cuda", n=n, k=k, aligned=aligned).name == expected
    monkeypatch.setattr(_registry, "load_extension", lambda: False)
    routing.clear_cache()
    assert routing.select("int8_scaled_mm", device="cuda", n=n, k=k, aligned=aligned).name == "reference_cuda"
    routing.clear_cache()


def test_force_backend_names_the_reason(monkeypatch):
    monkeypatch.setattr(_registry, "load_extension", lambda: True)
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


# --------------------------------------------------------------------------------- every op: accept / reject table

def _weight(n, k, bits, group_size, layout=0):
    from qtorch.nn.weight_only import pack_layout
    from qtorch.quant.packing import unpack

    q, scale, zp = qops.group_quantize(torch.randn(n, k), bits, group_size, False)
    return (pack_layout(unpack(q, bits), bits, layout) if layout else q), scale, zp


def _case_table():
    """(op, args, expected exception or None): awkward accepted shapes (M = 0, 1, 17; K = 1; ragged N, K) and one
    rejected input per rule of each op's contract."""
    torch.manual_seed(0)
    x = torch.randn(17, 96)
    w4, s4, z4 = _weight(40, 96, 4, 48)
    w8t, s8t, z8t = _weight(40, 64, 8, 32, layout=1)
    cases = [
        ("quantize_per_token", (torch.randn(17, 37, dtype=torch.bfloat16),), None),
        ("quantize_per_token", (torch.randn(0, 8),), None),
        ("quantize_per_token", (torch.randn(3, 1, dtype=torch.float16),), None),
        ("quantize_per_token", (torch.randn(8),), ValueError),
        ("quantize_per_token", (torch.zeros(2, 4, dtype=torch.int32),), TypeError),
        ("quantize_per_token", (torch.zeros(2, 0),), ValueError),
        ("quantize_per_tensor", (torch.randn(17, 37, dtype=torch.bfloat16), torch.tensor([0.1]),
                                 torch.tensor([-3], dtype=torch.int32)), None),
        ("quantize_per_tensor", (torch.randn(0, 8), torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32)), None),
        ("quantize_per_tensor", (torch.randn(3, 1), torch.tensor([0.5]), torch.tensor([2], dtype=torch.int32)), None),
        ("quantize_per_tensor", (torch.randn(3, 4), torch.tensor([0.5, 1.0]), torch.tensor([0], dtype=torch.int32)),
         ValueError),  # scale not (1,)
        ("quantize_per_tensor", (torch.randn(3, 4), torch.tensor([0.5]), torch.tensor([0.0])), TypeError),
        ("quantize_per_tensor", (torch.zeros(2, 0), torch.tensor([0.5]), torch.tensor([0], dtype=torch.int32)),
         ValueError),
        ("int8_scaled_mm", scaled_mm_args(17, 200, 40), None),
        ("int8_scaled_mm", scaled_mm_args(1, 16, 1, w_zp=False, bias=False, out_dtype=torch.bfloat16), None),
        ("int8_scaled_mm", scaled_mm_args(0, 24, 8), None),
        ("int8_scaled_mm", per_tensor(scaled_mm_args(17, 200, 40)), None),  # static: (1,) S_X, Z_X
        ("int8_scaled_mm", per_tensor(scaled_mm_args(0, 24, 8)), None),
        ("int8_scaled_mm", scaled_mm_args(3, 24, 8)[:2] + (torch.zeros(1, 1, dtype=torch.int32),)
         + scaled_mm_args(3, 24, 8)[3:], ValueError),  # x_zp neither (M,) nor (1,)
        ("int8_scaled_mm", scaled_mm_args(3, 24, 8)[:8] + (torch.int32,), TypeError),
        ("int8_scaled_mm", (int8(3, 9),) + scaled_mm_args(3, 24, 8)[1:], ValueError),  # K mismatch
        ("int8_scaled_mm", scaled_mm_args(3, 24, 8)[:1] + (torch.rand(2),) + scaled_mm_args(3, 24, 8)[2:], ValueError),
        ("int8_scaled_mm", scaled_mm_args(3, 24, 8)[:7] + (torch.randn(24, dtype=torch.float64), torch.float32),
         TypeError),
        ("int8_linear_requant", requant_args(5, 200, 40), None),
        ("int8_linear_requant", requant_args(0, 16, 16, bias=False), None),
        ("int8_linear_requant", tuple(None if i == 3 else a for i, a in enumerate(requant_args(3, 24, 40))), None),
        ("int8_linear_requant", requant_args(2, 16, 16)[:8] + (300,), ValueError),
        ("int8_linear_requant", requant_args(2, 16, 16)[:6] + (torch.zeros(15, dtype=torch.int32),)
         + requant_args(2, 16, 16)[7:], ValueError),
        ("group_quantize", (torch.randn(5, 96), 4, 48, False), None),
        ("group_quantize", (torch.randn(3, 64, dtype=torch.bfloat16), 8, 16, True), None),
        ("group_quantize", (torch.randn(4, 136), 8, 136, True), None),
        ("group_quantize", (torch.randn(4, 64), 3, 32, True), ValueError),
        ("group_quantize", (torch.randn(4, 96), 4, 64, True), ValueError),
        ("group_quantize", (torch.randn(4, 33), 4, 33, True), ValueError),  # int4 needs K even
        ("group_quantize", (torch.ones(4, 64, dtype=torch.int8), 8, 32, True), TypeError),
        ("group_dequantize", (w4, s4, z4, 4, 48, torch.bfloat16), None),
        ("group_dequantize", (w8t, s8t, z8t, 8, 32, torch.float32, 1), None),
        ("group_dequantize", (w4, s4[:, :1], z4, 4, 48, torch.float32), ValueError),
        ("group_dequantize", (w4.view(torch.int8), s4, z4, 4, 48, torch.float32), TypeError),
        ("group_dequantize", (w4, s4, z4, 4, 48, torch.int32), TypeError),
        ("group_dequantize", (w4, s4, z4, 4, 48, torch.float32, 2), ValueError),
        ("weight_only_linear", (x, w4, s4, z4, 4, 48, torch.randn(40)), None),
        ("weight_only_linear", (x[:1].bfloat16(), w4, s4, z4, 4, 48, None), None),
        ("weight_only_linear", (x[:0], w4, s4, z4, 4, 48, None), None),
        ("weight_only_linear", (torch.randn(17, 64), w8t, s8t, z8t, 8, 32, None, 1), None),
        ("weight_only_linear", (x[:, :64], w4, s4, z4, 4, 48, None), ValueError),  # K mismatch
        ("weight_only_linear", (x, w4, s4, z4, 4, 48, torch.randn(39)), ValueError),
        ("weight_only_linear", (x, w4, s4, z4, 4, 48, None, 2), ValueError),
        ("weight_only_linear", (x.int(), w4, s4, z4, 4, 48, None), TypeError),
        ("codebook_linear", (torch.randn(3, 64), torch.randint(0, 255, (8, 32), dtype=torch.uint8),
                             torch.randn(8, 2, 16), 4, 32, None), None),
        ("codebook_linear", (torch.randn(3, 64), torch.randint(0, 255, (8, 32), dtype=torch.uint8),
                             torch.randn(8, 2, 17), 4, 32, None), ValueError),
    ]
    return cases


CASES = _case_table()


def _outcome(fn):
    """("ok", outputs) or ("raised", exception type)."""
    try:
        return "ok", fn()
    except (TypeError, ValueError) as exc:
        return "raised", type(exc)


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("op,args,error", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cpu_and_fake_agree_on_the_contract(op, args, error):
    from torch._subclasses.fake_tensor import FakeTensorMode

    fn = getattr(qops, op)
    kind, cpu = _outcome(lambda: fn(*args))
    assert (kind, cpu if kind == "raised" else None) == (("raised", error) if error else ("ok", None))
    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        fake_kind, fake = _outcome(lambda: fn(*fake_args))
    assert fake_kind == kind
    if kind == "raised":
        assert fake == cpu
    else:
        assert [(t.shape, t.dtype) for t in _flat(fake)] == [(t.shape, t.dtype) for t in _flat(cpu)]


@pytest.mark.cuda
@pytest.mark.parametrize("op,args,error", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cuda_agrees_with_cpu(op, args, error):
    """CUDA accepts and rejects exactly what the CPU does; integer outputs bit-exact, float outputs close."""
    fn = getattr(qops, op)
    kind, cpu = _outcome(lambda: fn(*args))
    cuda_args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    cuda_kind, cuda = _outcome(lambda: fn(*cuda_args))
    assert cuda_kind == kind and (kind == "ok" or cuda == cpu)
    if kind == "ok":
        for c, g in zip(_flat(cpu), _flat(cuda)):
            assert g.shape == c.shape and g.dtype == c.dtype
            if c.dtype.is_floating_point:
                torch.testing.assert_close(g.cpu().float(), c.float(), rtol=2e-2, atol=2e-2)
            else:
                assert torch.equal(g.cpu(), c)
