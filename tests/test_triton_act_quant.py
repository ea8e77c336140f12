"""triton_kernels.act_quant.quantize_per_token: bit-exact with the reference (interpreter on CPU, H200 on GPU)."""
import pytest
import torch
from test_triton_reference import quantize_per_token_ref

from triton_kernels import act_quant

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _check(x):
    q, scale, zp = act_quant.quantize_per_token(x)
    q_ref, scale_ref, zp_ref = quantize_per_token_ref(x)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and zp.dtype == torch.int32
    assert torch.equal(scale, scale_ref)
    assert torch.equal(zp, zp_ref)
    assert torch.equal(q, q_ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (17, 200)])
def test_matches_reference(dtype, shape):
    x = (torch.randn(shape) * 3 + 0.5).to(dtype).to(DEVICE)
    _check(x)


def test_edge_rows_all_zero_positive_negative_and_ties():
    x = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # S == 0 -> S = 1, Z = -128
            [1.0, 2.0, 3.0, 4.0],  # r_min clamps to 0
            [-1.0, -2.0, -3.0, -4.0],  # r_max clamps to 0
            [0.0, 0.5, 1.5, 255.0],  # S = 1: exact ties round half to even
        ],
        device=DEVICE,
    )
    _check(x)


def test_two_pass_path_for_long_rows(monkeypatch):
    monkeypatch.setattr(act_quant, "SINGLE_PASS_MAX_K", 64)
    x = torch.randn(3, 300, device=DEVICE).to(torch.bfloat16)
    _check(x)


def test_non_contiguous_rows_and_empty():
    x = torch.randn(6, 80, device=DEVICE)[::2, :50]
    _check(x)
    q, scale, zp = act_quant.quantize_per_token(torch.empty(0, 8, device=DEVICE))
    assert q.shape == (0, 8) and scale.shape == (0,) and zp.shape == (0,)


@pytest.mark.parametrize(
    "x, error",
    [
        (torch.zeros(4, dtype=torch.float32), ValueError),  # 1-D
        (torch.zeros(2, 4, dtype=torch.int32), TypeError),  # not a float
        (torch.zeros(2, 0), ValueError),  # K == 0
    ],
)
def test_bad_input(x, error):
    with pytest.raises(error, match="x"):
        act_quant.quantize_per_token(x.to(DEVICE))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1, 4096), (17, 11008), (4099, 4096), (5, 40000)])
def test_matches_reference_gpu(dtype, shape):
    x = (torch.randn(shape, device="cuda") * 4).to(dtype)
    x[0, :7] = torch.tensor([0.5, 1.5, -2.5, 100.0, -100.0, 0.0, 3.0], device="cuda").to(dtype)
    _check(x)
