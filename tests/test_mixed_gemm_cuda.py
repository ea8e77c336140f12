"""The mixed-input GEMM kernels of qtorch._C (csrc/mixed_gemm) through their private ops, on fresh random inputs of
awkward shapes: dequantization bit-exact with the reference; y within 2x the error of a same-precision PyTorch
computation (ŵ rounded to x's dtype, cuBLAS) against float64."""
import pytest
import torch

from qtorch.ops.group import group_dequantize_reference
from qtorch.quant.layout import pack_tiled, tiled_chunk
from qtorch.quant.packing import pack

pytestmark = pytest.mark.cuda


def _kernels():
    import qtorch.ops  # noqa: F401  (defines the schemas, loads qtorch._C)
    from qtorch._ext import load_extension

    if not load_extension():
        pytest.skip("qtorch._C is not built")
    return torch.ops.qtorch


def _weights(bits, n, k, group_size, device="cuda"):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.randint(lo, hi + 1, (n, k), dtype=torch.int8, device=device)  # (N, K)
    g = k // group_size
    scale = torch.rand(n, g, device=device) * 0.02 + 0.001  # (N, K/g) fp32
    zp = torch.randint(lo, hi + 1, (n, g), dtype=torch.int8, device=device)  # (N, K/g)
    return q, scale, zp


def _w_hat(q, scale, zp, bits, group_size):
    return group_dequantize_reference(pack(q, bits), scale, zp, bits, group_size, torch.float64)  # (N, K)


def _rel(a, b):
    return float((a.double() - b).norm() / b.norm().clamp_min(1e-30))


CASES = [  # (bits, N, K, group_size)
    (4, 48, 128, 64), (4, 200, 640, 128), (4, 72, 512, 256), (4, 136, 192, 192), (4, 40, 320, 320),
    (8, 200, 96, 32), (8, 56, 256, 64), (8, 88, 224, 224), (8, 24, 32, 32),
]


@pytest.mark.parametrize("bits,n,k,group_size", CASES)
def test_dequant_tiled_is_bit_exact(bits, n, k, group_size):
    ops = _kernels()
    q, scale, zp = _weights(bits, n, k, group_size)
    for dtype in (torch.bfloat16, torch.float16):
        out = ops._dequant_tiled_cuda(pack_tiled(q, bits), scale, zp, bits, group_size, k, dtype)
        ref = group_dequantize_reference(pack(q, bits), scale, zp, bits, group_size, dtype)
        assert torch.equal(out, ref)


@pytest.mark.parametrize("bits,n,k,group_size", CASES)
@pytest.mark.parametrize("m", [1, 3, 16, 17, 64, 100, 257, 1025, 4099])
@pytest.mark.parametrize("path", ["mixed", "dequant"])
def test_mixed_gemm_matches_float64(bits, n, k, group_size, m, path):
    ops = _kernels()
    q, scale, zp = _weights(bits, n, k, group_size)
    w_hat = _w_hat(q, scale, zp, bits, group_size)  # (N, K) fp64
    packed = pack_tiled(q, bits)
    max_mixed_m = 1 << 30 if path == "mixed" else -1
    for dtype in (torch.bfloat16, torch.float16):
        x = torch.randn(m, k, device="cuda").to(dtype)
        bias = torch.randn(n, device="cuda").to(dtype)
        y = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, bias, max_mixed_m)
        assert y.dtype == dtype and tuple(y.shape) == (m, n)
        ref = x.double() @ w_hat.t() + bias.double()  # (M, N) fp64
        same_precision = torch.addmm(bias, x, w_hat.to(dtype).t())  # ŵ rounded to x's dtype, cuBLAS
        floor = 1e-6 if dtype == torch.float16 else 1e-5
        assert torch.isfinite(y).all()
        assert _rel(y, ref) <= 2 * _rel(same_precision, ref) + floor, (dtype, _rel(y, ref), _rel(same_precision, ref))


# Shapes for the forced tile variants (csrc/mixed_gemm/launch.cu): ragged N, grouped and per channel, long K (16384,
# 11008: many chunks per warp, a partial last step of U chunks), int8 with 32-value groups and K not a multiple of 64.
VARIANT_CASES = [(4, 136, 1024, 128), (8, 72, 1024, 1024), (4, 40, 4096, 4096), (8, 264, 2048, 64),
                 (4, 40, 16384, 128), (8, 24, 11008, 11008), (8, 40, 544, 32)]
VARIANTS = 17  # csrc/mixed_gemm/launch.cu kVariants: 0-12 the register kernel (10-12: 4 warps per CTA), 13-16 the
#               warpgroup-MMA kernel (sm_90a; int4, and int8 with 64-value groups or per channel; otherwise, e.g. int8
#               g = 32 or K = 544, the register kernel's tile)
# Variants with the same warps per CTA give each warp the same chunks (c % warps) and sum them in the same order. The
# warpgroup kernel's K split follows its CTA count, so its variants (13-16) are checked against float64 only.
SAME_SUMS = (range(0, 10), range(10, 13))  # 8 warps, 4 warps


# N of 16392 / 12296: more CTAs than are resident at once.
@pytest.mark.parametrize("bits,n,k,group_size", [(4, 40, 16384, 128), (8, 24, 11008, 11008), (4, 136, 1024, 64),
                                                 (4, 16392, 256, 128), (8, 12296, 512, 512)])
def test_tile_variants_agree_bit_for_bit(bits, n, k, group_size, monkeypatch):
    """Every variant with the same warps per CTA gives each warp the same chunks in the same order and reduces the
    warps in a fixed order: the outputs are identical."""
    ops = _kernels()
    q, scale, zp = _weights(bits, n, k, group_size)
    packed = pack_tiled(q, bits)
    for m in (1, 17, 64):
        x = torch.randn(m, k, device="cuda").to(torch.bfloat16)
        for variants in SAME_SUMS:
            outs = []
            for variant in variants:
                monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
                outs.append(ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 1 << 30))
            assert all(torch.equal(o, outs[0]) for o in outs), (m, [int((o != outs[0]).sum()) for o in outs])


@pytest.mark.parametrize("variant", range(VARIANTS))
@pytest.mark.parametrize("bits,n,k,group_size", VARIANT_CASES)
def test_every_tile_variant_matches_float64(variant, bits, n, k, group_size, monkeypatch):
    ops = _kernels()
    monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
    q, scale, zp = _weights(bits, n, k, group_size)
    w_hat = _w_hat(q, scale, zp, bits, group_size)  # (N, K) fp64
    packed = pack_tiled(q, bits)
    for m, dtype in ((1, torch.bfloat16), (9, torch.float16), (70, torch.bfloat16)):
        x = torch.randn(m, k, device="cuda").to(dtype)
        bias = torch.randn(n, device="cuda")  # fp32 bias
        y = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, bias, 1 << 30)
        ref = x.double() @ w_hat.t() + bias.double()
        same_precision = torch.addmm(bias.to(dtype), x, w_hat.to(dtype).t())
        floor = 1e-6 if dtype == torch.float16 else 1e-5
        assert _rel(y, ref) <= 2 * _rel(same_precision, ref) + floor, (m, dtype, _rel(y, ref), _rel(same_precision, ref))


@pytest.mark.parametrize("variant,bits", [(13, 4), (13, 8), (16, 8)])  # 2, 2, 3 consumer warpgroups
@pytest.mark.parametrize("splits", [1, 2, 3, 8])
def test_forced_k_split_matches_float64(splits, variant, bits, monkeypatch):
    """The warpgroup kernel (int4 and int8) with its K split forced
    (QTORCH_MIXED_SPLITS, tuning only): 5 chunks as 5, 3 + 2, 2 + 2 + 1 and 1 × 5 + 3 CTAs without chunks (odd counts:
    the register-A loop's last chunk after its two-chunk body) still give x · Ŵᵀ."""
    ops = _kernels()
    monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
    monkeypatch.setenv("QTORCH_MIXED_SPLITS", str(splits))
    n, k, group_size = 136, 320, 64
    q, scale, zp = _weights(bits, n, k, group_size)
    w_hat = _w_hat(q, scale, zp, bits, group_size)  # (N, K) fp64
    x = torch.randn(70, k, device="cuda").to(torch.bfloat16)
    y = ops._mixed_gemm_cuda(x, pack_tiled(q, bits), scale, zp, bits, group_size, None, 1 << 30)
    ref = x.double() @ w_hat.t()
    same_precision = x @ w_hat.to(torch.bfloat16).t()
    assert _rel(y, ref) <= 2 * _rel(same_precision, ref) + 1e-5


@pytest.mark.parametrize("variant,bits,group_size",
                         [(0, 4, 128), (13, 4, 128), (15, 4, 64), (13, 8, 64), (16, 8, 64)])
@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("scale_size", [1e-6, 1e-2])
def test_fp16_folded_scales_keep_precision(variant, bits, group_size, splits, scale_size, monkeypatch):
    """fp16 x with grouped scales around 1e-6 (the warpgroup kernel folds S into q − Z in fp16: without each row's
    power of two these products fall below fp16's normal range, ~3x the same-precision error) and around 1e-2: within
    2x the same-precision error, also with the K split (each CTA's own power of two, undone before the exchange)."""
    ops = _kernels()
    monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
    monkeypatch.setenv("QTORCH_MIXED_SPLITS", str(splits))
    n, k = 200, 1024
    q, scale, zp = _weights(bits, n, k, group_size)
    scale = scale * (scale_size / 0.01)  # (N, K/g) fp32
    w_hat = _w_hat(q, scale, zp, bits, group_size)  # (N, K) fp64
    x = torch.randn(128, k, device="cuda").to(torch.float16)
    y = ops._mixed_gemm_cuda(x, pack_tiled(q, bits), scale, zp, bits, group_size, None, 1 << 30)
    ref = x.double() @ w_hat.t()
    same_precision = x @ w_hat.to(torch.float16).t()
    assert torch.isfinite(y).all()
    assert _rel(y, ref) <= 2 * _rel(same_precision, ref) + 1e-6, (_rel(y, ref), _rel(same_precision, ref))


@pytest.mark.parametrize("variant", [0, 13, 14, 15])
def test_zero_points_at_an_odd_address(variant, monkeypatch):
    """A contiguous w_zp view that starts at an odd byte (the warpgroup kernel copies aligned 4-byte words)."""
    ops = _kernels()
    monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
    bits, n, k, group_size = 4, 72, 1024, 128
    q, scale, zp = _weights(bits, n, k, group_size)
    shifted = torch.empty(zp.numel() + 1, dtype=torch.int8, device="cuda")[1:].view_as(zp)  # base address odd
    shifted.copy_(zp)
    packed = pack_tiled(q, bits)
    x = torch.randn(70, k, device="cuda").to(torch.bfloat16)
    assert torch.equal(ops._mixed_gemm_cuda(x, packed, scale, shifted, bits, group_size, None, 1 << 30),
                       ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 1 << 30))


@pytest.mark.parametrize("variant", [0, 13, 14, 15])
def test_weights_at_a_4_byte_offset(variant, monkeypatch):
    """A contiguous tiled w_q view whose base is 4 bytes past a 16-byte boundary (every kernel reads 16-byte vectors
    or TMA boxes of it): copied by the binding, same result."""
    ops = _kernels()
    monkeypatch.setenv("QTORCH_MIXED_VARIANT", str(variant))
    bits, n, k, group_size = 4, 72, 1024, 128
    q, scale, zp = _weights(bits, n, k, group_size)
    packed = pack_tiled(q, bits)
    shifted = torch.empty(packed.numel() + 1, dtype=torch.int32, device="cuda")[1:].view_as(packed)
    shifted.copy_(packed)
    x = torch.randn(70, k, device="cuda").to(torch.bfloat16)
    for max_mixed_m in (1 << 30, -1):  # the mixed-input kernels, and dequantize + cuBLAS
        assert torch.equal(ops._mixed_gemm_cuda(x, shifted, scale, zp, bits, group_size, None, max_mixed_m),
                           ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, max_mixed_m))


def test_bias_fp32_none_strided_x_and_empty_m():
    ops = _kernels()
    bits, n, k, group_size = 4, 104, 256, 128
    q, scale, zp = _weights(bits, n, k, group_size)
    w_hat = _w_hat(q, scale, zp, bits, group_size)
    packed = pack_tiled(q, bits)
    wide = torch.randn(9, k + 3, device="cuda", dtype=torch.bfloat16)
    x = wide[:, 1:k + 1]  # row stride k + 3, misaligned base: the binding copies it
    for bias in (None, torch.randn(n, device="cuda")):
        y = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, bias, 64)
        ref = x.double() @ w_hat.t() + (0 if bias is None else bias.double())
        assert _rel(y, ref) < 1e-2
    xt = torch.randn(k, 5, device="cuda", dtype=torch.bfloat16).t()  # column-major view
    assert _rel(ops._mixed_gemm_cuda(xt, packed, scale, zp, bits, group_size, None, 64), xt.double() @ w_hat.t()) < 1e-2
    empty = ops._mixed_gemm_cuda(x[:0], packed, scale, zp, bits, group_size, None, 64)
    assert tuple(empty.shape) == (0, n)


def test_expanded_and_padded_x_at_mid_m():
    """x rows at stride 0 (an expanded row: copied by the binding) and at stride K + 8 (aligned: read in place through
    the warpgroup kernel's tensor map on sm_90) at M = 100."""
    ops = _kernels()
    bits, n, k, group_size = 4, 104, 512, 128
    q, scale, zp = _weights(bits, n, k, group_size)
    w_hat = _w_hat(q, scale, zp, bits, group_size)
    packed = pack_tiled(q, bits)
    expanded = torch.randn(1, k, device="cuda", dtype=torch.bfloat16).expand(100, k)
    padded = torch.randn(100, k + 8, device="cuda", dtype=torch.bfloat16)[:, :k]
    for x in (expanded, padded):
        y = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 1 << 30)
        assert _rel(y, x.double() @ w_hat.t()) < 1e-2


@pytest.mark.parametrize("m", [4, 20, 64])  # one, two and eight token tiles
def test_nan_in_a_row_stays_in_that_row(m):
    ops = _kernels()
    bits, n, k, group_size = 4, 32, 2048, 64
    q, scale, zp = _weights(bits, n, k, group_size)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    x[2, 5] = float("nan")
    y = ops._mixed_gemm_cuda(x, pack_tiled(q, bits), scale, zp, bits, group_size, None, 64)
    rest = [r for r in range(m) if r != 2]
    assert torch.isnan(y[2]).all() and torch.isfinite(y[rest]).all()


@pytest.mark.parametrize("m", [8, 48])
def test_no_host_sync_and_graph_capture(m):
    ops = _kernels()
    bits, n, k, group_size = 4, 256, 2048, 128
    q, scale, zp = _weights(bits, n, k, group_size)
    packed = pack_tiled(q, bits)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    eager = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 64)
    torch.cuda.set_sync_debug_mode("error")
    try:
        ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 64)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = ops._mixed_gemm_cuda(x, packed, scale, zp, bits, group_size, None, 64)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager)  # deterministic: fixed reduction order
