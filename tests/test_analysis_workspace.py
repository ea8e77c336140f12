"""The workspaces of quantized linear layers in the inference memory model (linear_workspace): the weight dequantized
by the weight-only routing above its threshold, checked against what the row-major launcher allocates (Triton
interpreter on CPU), W8A8's per-token quantized x, and where inference_peak adds them."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from qtorch.analysis import from_llama_config, inference_peak
from qtorch.analysis.peak import linear_workspace, weight_only_workspace
from qtorch.models import get_config
from qtorch.quant.layout import storage_layout
from qtorch.ops import routing
from qtorch.ops.weight_only import DEQUANT_MIN_M, linear_meta, mixed_max_m
from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED
from triton_kernels.group_quant import group_quantize


class _Allocations(TorchDispatchMode):
    """The (shape, dtype) of every tensor an op creates (the interpreter's host copies of kernel arguments too: they
    repeat the arguments' shapes, which the test keeps distinct from the (N, K) weight)."""

    def __init__(self):
        super().__init__()
        self.created = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.created += [(tuple(t.shape), t.dtype) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        return out


@pytest.mark.parametrize("m", [DEQUANT_MIN_M - 1, DEQUANT_MIN_M])
def test_row_major_workspace_is_the_weight_the_launcher_dequantizes(m):
    n, k, group_size = 48, 96, 32  # K = 96: no tiled layout, the row-major kernels serve it
    assert storage_layout(4, k, group_size) == LAYOUT_ROWMAJOR
    w_q, w_scale, w_zp = group_quantize(torch.randn(n, k), 4, group_size, False)
    x = torch.randn(m, k, dtype=torch.bfloat16)
    # the backend the routing picks for this call on a GPU, run here (Triton through the interpreter); called directly
    # so that the dispatch mode sees the ops inside it, not only the op's output
    backend = routing.select("weight_only_linear",
                             **{**linear_meta(x, w_q, w_scale, 4, group_size, LAYOUT_ROWMAJOR), "device": "cuda"})
    with torch.inference_mode(), _Allocations() as allocations:
        backend.run(x, w_q, w_scale, w_zp, 4, group_size, None, LAYOUT_ROWMAJOR)
    dequantized = ((n, k), torch.bfloat16) in allocations.created  # an (N, K) weight in x's dtype
    assert dequantized == (m >= DEQUANT_MIN_M)
    assert weight_only_workspace("int4-g32", m, n, k, 2) == (n * k * 2 if dequantized else 0)


def test_prefill_peak_adds_the_dequantized_head_weight():
    """llama-200m at 1 × T tokens with a quantized int4 head (tests/test_analysis_gpu.py's forward at T = 256, where
    the H200 measured 318,956,032 bytes, 69,111,842 of them workspaces allocated before: 249,844,190 for the model):
    the head's x, normed x and logits, plus its (v, h) weight dequantized to bf16 above mixed_max_m(4) tokens (the
    limit on this machine's GPU, if any)."""
    cfg = from_llama_config(get_config("llama-200m"))
    h, v = cfg.hidden_size, cfg.vocab_size
    assert storage_layout(4, h, 128) == LAYOUT_TILED
    limit = mixed_max_m(4)
    for seq in (limit, limit + 1, 256):
        peak = inference_peak(cfg, 1, seq, "int4-g128", quantize_head=True)
        dequantized_head = v * h * 2 if seq > limit else 0
        assert peak.peak_event == "forward: head"
        assert peak.peak == sum(peak.static.values()) + seq * (2 * h * 2 + v * 2) + dequantized_head
    assert inference_peak(cfg, 1, 256, "int4-g128", quantize_head=True).peak == 249_835_520


def test_w8a8_workspace_is_the_per_token_quantized_input():
    cfg = from_llama_config(get_config("llama-200m"))
    h, v, t = cfg.hidden_size, cfg.vocab_size, 100
    assert linear_workspace("w8a8", t, v, h) == t * h + t * 4 + t * 4  # x_q int8, scale fp32, zero point int32
    assert linear_workspace("bf16", t, v, h) == 0
    peak = inference_peak(cfg, 1, t, "w8a8", quantize_head=True)
    assert dict(peak.timeline)["forward: head"] - sum(peak.static.values()) == t * (2 * h * 2 + v * 2 + h + 8)


def test_mlp_workspace_rides_on_the_call_that_allocates_it():
    """Bf16 head, quantized layers: the w3 call holds x, h, normed h, silu(w1 x), w3 x and the dequantized (i, h)
    weight; the w2 call x, h, normed h, the product, its output and the (h, i) weight."""
    cfg = from_llama_config(get_config("tiny"))
    t, h, i, a = 256, cfg.hidden_size, cfg.intermediate_size, 2
    peak = inference_peak(cfg, 1, t, "int8-g32")
    live = {event: bytes_ - sum(peak.static.values()) for event, bytes_ in peak.timeline}
    assert live["forward: mlp w3"] == 3 * t * h * a + 2 * t * i * a + i * h * a
    assert live["forward: mlp w2"] == 3 * t * h * a + t * (i + h) * a + h * i * a
    assert live["forward: mlp silu(w1 x) * w3 x"] == 3 * t * h * a + 3 * t * i * a


def test_mixed_gemm_limits_by_bits_and_stages(monkeypatch):
    """The routing's mixed-input limits (one rule, used by the call and by the memory model): off sm_90 and off CUDA
    64; on sm_90 1024 for int4 and 256 for int8 where K and its groups are whole 64-value warpgroup stages."""
    from qtorch.ops import weight_only

    assert mixed_max_m(8, torch.device("cpu"), 4096, 4096) == weight_only.MIXED_MAX_M
    monkeypatch.setattr(weight_only, "_is_sm90", lambda index: True)
    cuda = torch.device("cuda", 0)
    assert mixed_max_m(4, cuda, 4096, 128) == weight_only.MIXED_MAX_M_SM90_INT4
    assert mixed_max_m(8, cuda, 4096, 4096) == weight_only.MIXED_MAX_M_SM90_INT8  # per channel
    assert mixed_max_m(8, cuda, 4096, 64) == weight_only.MIXED_MAX_M_SM90_INT8
    assert mixed_max_m(8, cuda, 4096, 32) == weight_only.MIXED_MAX_M  # 32-value groups: not whole stages
    assert mixed_max_m(8, cuda, 224, 224) == weight_only.MIXED_MAX_M  # K = 224: not whole stages
    assert mixed_max_m(8, cuda) == weight_only.MIXED_MAX_M  # K unknown
    monkeypatch.setattr(weight_only, "_is_sm90", lambda index: False)
    assert mixed_max_m(4, cuda, 4096, 128) == weight_only.MIXED_MAX_M
    # the memory model follows the same limit: an int8 per-channel 4096 -> 4096 layer on sm_90 at 200 tokens keeps
    # its int8 weight (no dequantized copy), at 300 tokens dequantizes it
    monkeypatch.setattr(weight_only, "_is_sm90", lambda index: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert weight_only_workspace("int8-weight-only", 200, 4096, 4096, 2) == 0
    assert weight_only_workspace("int8-weight-only", 300, 4096, 4096, 2) == 4096 * 4096 * 2
