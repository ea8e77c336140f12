"""QuantLinear of every scheme against the float nn.Linear, and against the primitives bit for bit.

SQNR thresholds come from the bit width. Uniform quantization with step Δ adds noise of variance Δ²/12; for data of
standard deviation σ whose quantized range is r·σ wide on each side of 0, Δ = r·σ / L with L = q_max = 2^(b−1) − 1
(symmetric) or L = (2^b − 1) / 2 (asymmetric, range ≈ 2rσ over 2^b − 1 steps), so

    SQNR = σ² / (Δ² / 12) = 12 L² / r².

For n Gaussian values the largest |value| is below r = sqrt(2 ln(2n)) σ with high probability, so using that r gives
a conservative prediction. The output error of y = x Wᵀ with iid x is x ΔWᵀ, whose power relative to y's equals the
weight's ‖ΔW‖² / ‖W‖²: the output SQNR is the weight SQNR. Independent noises add as noise ratios 10^(−SQNR/10)
(W8A8: weight + activation (+ output for int8 output)). K-means codebooks: the optimal (Lloyd–Max) b-bit quantizer of
a Gaussian has distortion D_b = 0.1175, 0.03454, 0.009497 σ² for b = 2, 3, 4; k-means on the sample itself comes
within a fraction of a dB. Beyond 4 bits the k-means of qtorch.quant (quantile initialisation) stops 1–2 dB short of
Lloyd–Max, so wider codebooks are held to the high-resolution slope instead: at least 4 of the ideal 6.02 dB per
added bit. Each test allows 1 dB below the prediction.
"""
import math

import pytest
import torch
import torch.nn as nn

import qtorch.ops as qops
from qtorch.quant.layout import storage_layout
from qtorch.ops.group import to_rowmajor
from qtorch.config import (CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig,
                           W8A8StaticConfig)
from qtorch.nn import CodebookLinear, QuantLinear, W8A8Linear, W8A8StaticLinear, WeightOnlyLinear
from qtorch.nn.clip_search import CLIP_RATIOS
from qtorch.quant import (compute_qparams, dequantize, integer_linear, integer_linear_int64, kmeans_dequantize,
                          kmeans_quantize, prepare_integer_linear, quantize, sqnr_db, unpack)

M, K, N = 66, 256, 96  # rows (ragged), in_features, out_features
MARGIN_DB = 1.0
LLOYD_MAX = {2: 0.1175, 3: 0.03454, 4: 0.009497}  # Max (1960), distortion / σ² of the optimal Gaussian quantizer


def uniform_sqnr_db(bits: int, n: int, symmetric: bool = True) -> float:
    """12 L² / r² in dB for b-bit quantization of n Gaussian values sharing one scale."""
    levels = (1 << (bits - 1)) - 1 if symmetric else ((1 << bits) - 1) / 2
    r = math.sqrt(2 * math.log(2 * n))
    return 10 * math.log10(12 * levels**2 / r**2)


def codebook_sqnr_db(bits: int) -> float:
    return -10 * math.log10(LLOYD_MAX[bits])


def combine_db(*sqnrs: float) -> float:
    return -10 * math.log10(sum(10 ** (-s / 10) for s in sqnrs))


def gaussian_linear(bias=True, k=K, n=N, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=gen) * 0.05)
        if bias:
            lin.bias.copy_(torch.randn(n, generator=gen) * 0.01)
    return lin


def calibrated(linear, config, batches):
    layer = QuantLinear.from_float(linear, config)
    layer.start_calibration()
    for b in batches:
        layer(b)
    layer.finish_calibration()
    return layer


# (config, predicted SQNR in dB) for Gaussian weights and inputs of the shapes above
SCHEMES = [
    (W8A8DynamicConfig(), combine_db(uniform_sqnr_db(8, K), uniform_sqnr_db(8, K, symmetric=False))),
    (Int8WeightOnlyConfig(), uniform_sqnr_db(8, K)),
    (GroupWeightOnlyConfig(bits=4, group_size=32), uniform_sqnr_db(4, 32)),
    (GroupWeightOnlyConfig(bits=4, group_size=128, symmetric=False), uniform_sqnr_db(4, 128, symmetric=False)),
    (GroupWeightOnlyConfig(bits=8, group_size=64), uniform_sqnr_db(8, 64)),
    (GroupWeightOnlyConfig(bits=4, group_size=64, clip_search=True), uniform_sqnr_db(4, 64)),
    (CodebookConfig(bits=2), codebook_sqnr_db(2)),
    (CodebookConfig(bits=3, group_size=64), codebook_sqnr_db(3)),
    (CodebookConfig(bits=4), codebook_sqnr_db(4)),
    (CodebookConfig(bits=4, group_size=32), codebook_sqnr_db(4)),
]


@pytest.mark.parametrize("config,predicted_db", SCHEMES, ids=lambda v: repr(v) if not isinstance(v, float) else "")
def test_scheme_sqnr_against_float_linear(config, predicted_db):
    lin = gaussian_linear()
    x = torch.randn(2, M // 2, K)
    layer = QuantLinear.from_float(lin, config)
    y = layer(x)
    assert y.shape == (2, M // 2, N) and y.dtype == torch.float32
    measured = sqnr_db(lin(x).detach(), y)
    assert measured > predicted_db - MARGIN_DB, (measured, predicted_db)


def test_codebook_sqnr_grows_with_bits():
    lin = gaussian_linear()
    x = torch.randn(M, K)
    ref = lin(x).detach()
    sqnrs = [sqnr_db(ref, QuantLinear.from_float(lin, CodebookConfig(bits))(x)) for bits in range(4, 9)]
    assert all(b - a > 4.0 for a, b in zip(sqnrs, sqnrs[1:])), sqnrs


@pytest.mark.parametrize("output", ["float", "int8"])
@pytest.mark.parametrize("observer", ["minmax", "moving_average", "percentile"])
def test_static_sqnr_against_float_linear(observer, output):
    lin = gaussian_linear()
    batches = [torch.randn(M, K) for _ in range(3)]
    layer = calibrated(lin, W8A8StaticConfig(observer=observer, output=output), batches)
    x = torch.randn(M, K)
    # one scale for all M·K activations (and M·N outputs): the range grows to sqrt(2 ln(2 M K)) σ
    predicted = combine_db(uniform_sqnr_db(8, K), uniform_sqnr_db(8, M * K, symmetric=False),
                           *([uniform_sqnr_db(8, M * N, symmetric=False)] if output == "int8" else []))
    assert sqnr_db(lin(x).detach(), layer(x)) > predicted - MARGIN_DB


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("config", [W8A8DynamicConfig(), GroupWeightOnlyConfig(4, 32), CodebookConfig(3)], ids=repr)
def test_output_dtype_follows_input(config, dtype):
    layer = QuantLinear.from_float(gaussian_linear(), config)
    x = torch.randn(5, K)
    y = layer(x.to(dtype))
    assert y.dtype == dtype and y.shape == (5, N)
    assert sqnr_db(layer(x), y.float()) > 30  # same layer, only the activation precision differs


# --- the op-level results equal the primitives' results bit for bit ---------------------------------------------
def test_w8a8_dynamic_equals_primitives():
    lin = gaussian_linear()
    layer = QuantLinear.from_float(lin, W8A8DynamicConfig())
    x = torch.randn(M, K)
    w_scale, w_zp = compute_qparams(lin.weight.detach(), 8, symmetric=True, granularity="channel", axis=0)
    w_q = quantize(lin.weight.detach(), w_scale, w_zp, 8)  # (N, K) int8
    assert torch.equal(layer.w_q, w_q) and torch.equal(layer.w_scale, w_scale.reshape(-1))
    assert torch.equal(layer.w_colsum, w_q.sum(dim=1, dtype=torch.int32))
    x_scale, x_zp = compute_qparams(x, 8, granularity="channel", axis=0)  # per token: (M, 1)
    x_q = quantize(x, x_scale, x_zp, 8)
    acc = x_q.long() @ w_q.long().T  # exact
    corr = (acc - x_zp.long() * w_q.long().sum(1)).to(torch.int32)
    expected = corr.float() * (x_scale * w_scale.reshape(1, -1)) + lin.bias.detach()
    assert torch.equal(layer(x), expected)


@pytest.mark.parametrize("bits,group_size,symmetric", [(4, 32, True), (4, 64, False), (8, 128, True)])
def test_weight_only_equals_group_quantize_and_primitives(bits, group_size, symmetric):
    lin = gaussian_linear()
    w = lin.weight.detach()
    layer = QuantLinear.from_float(lin, GroupWeightOnlyConfig(bits, group_size, symmetric))
    q, scale, zp = qops.group_quantize(w, bits, group_size, symmetric)
    # the layer stores q in its kernel's layout (tiled when K and g allow it): the same values
    assert int(layer.w_layout) == layer.layout == storage_layout(bits, K, group_size)
    assert torch.equal(to_rowmajor(layer.w_q, layer.w_scale, bits, layer.layout), q)
    assert torch.equal(layer.w_scale, scale) and torch.equal(layer.w_zp, zp)
    x = torch.randn(M, K)
    w_hat = dequantize(unpack(q, bits), scale, zp.int(), axis=-1, group_size=group_size)  # (N, K) fp32
    assert torch.equal(layer.dequantize_weight(), w_hat)
    assert torch.equal(layer(x), x @ w_hat.T + lin.bias.detach())


def test_int8_weight_only_is_per_channel():
    lin = gaussian_linear()
    layer = QuantLinear.from_float(lin, Int8WeightOnlyConfig())
    scale, zp = compute_qparams(lin.weight.detach(), 8, symmetric=True, granularity="channel", axis=0)
    assert layer.group_size == K and layer.w_scale.shape == (N, 1)
    assert torch.equal(to_rowmajor(layer.w_q, layer.w_scale, 8, layer.layout), quantize(lin.weight.detach(), scale, zp, 8))


@pytest.mark.parametrize("group_size", [None, 64])
def test_codebook_equals_kmeans_primitives(group_size):
    lin = gaussian_linear()
    config = CodebookConfig(bits=3, group_size=group_size)
    layer = QuantLinear.from_float(lin, config)
    gran = dict(granularity="channel", axis=0) if group_size is None else dict(granularity="group", axis=-1,
                                                                                group_size=group_size)
    idx, codebook = kmeans_quantize(lin.weight.detach(), 3, **gran)
    assert torch.equal(unpack(layer.indices, 4, signed=False), idx)
    assert torch.equal(layer.codebook.reshape(codebook.shape), codebook)
    w_hat = kmeans_dequantize(idx, codebook, **gran)
    x = torch.randn(M, K)
    assert torch.equal(layer.dequantize_weight(), w_hat)
    assert torch.equal(layer(x), x @ w_hat.T + lin.bias.detach())


@pytest.mark.parametrize("bias", [True, False])
def test_static_int8_output_equals_integer_linear(bias):
    lin = gaussian_linear(bias=bias)
    layer = calibrated(lin, W8A8StaticConfig(output="int8"), [torch.randn(M, K) for _ in range(2)])
    ref = prepare_integer_linear(lin.weight.detach(), float(layer.x_scale), int(layer.x_zp), float(layer.y_scale),
                                 int(layer.y_zp), bias=lin.bias.detach() if bias else None)
    assert torch.equal(layer.w_q, ref.w_q) and torch.equal(layer.multiplier, ref.multiplier)
    assert torch.equal(layer.shift, ref.shift)
    x = torch.randn(3, M, K) * 1.5  # wider than calibration: saturation included
    x_q = layer.quantize_input(x)
    assert torch.equal(x_q, quantize(x, layer.x_scale, layer.x_zp, 8))
    q_y = layer.forward_int8(x_q)  # (3, M, N) int8
    expected = integer_linear(x_q.reshape(-1, K), ref).reshape(3, M, N)
    assert torch.equal(q_y, expected)
    assert torch.equal(q_y, integer_linear_int64(x_q.reshape(-1, K), ref).reshape(3, M, N))
    assert torch.equal(layer(x), dequantize(q_y, layer.y_scale, layer.y_zp))


def test_static_float_output_equals_int8_scaled_mm_with_fixed_qparams():
    lin = gaussian_linear()
    batches = [torch.randn(M, K), torch.randn(M, K) * 2]
    layer = calibrated(lin, W8A8StaticConfig(), batches)
    both = torch.cat(batches)
    scale, zp = compute_qparams(both, 8)  # minmax over all calibration data, per tensor
    assert torch.equal(layer.x_scale, scale.reshape(1)) and torch.equal(layer.x_zp, zp.reshape(1))
    x = torch.randn(M, K)
    x_q = quantize(x, scale, zp, 8)
    expected = qops.int8_scaled_mm(x_q, scale.expand(M).contiguous(), zp.expand(M).contiguous(), layer.w_q,
                                   layer.w_scale, layer.w_colsum, None, lin.bias.detach(), torch.float32)
    assert torch.equal(layer(x), expected)


def test_zero_point_correction_beats_symmetric_activations():
    """Post-ReLU-like activations (all ≥ 0): the asymmetric per-token grid spends its 256 levels on [0, max] where a
    symmetric one wastes the negative half (half the step: about 6 dB); dropping the Z_X·Σq_W correction instead
    ruins the result. The reference uses the quantized weight, so only the activation error is measured."""
    lin = gaussian_linear()
    layer = QuantLinear.from_float(lin, W8A8DynamicConfig())
    x = torch.randn(M, K).abs() + 0.5  # asymmetric data
    ref = x @ layer.dequantize_weight().T + lin.bias.detach()
    asym = sqnr_db(ref, layer(x))
    s_scale, s_zp = compute_qparams(x, 8, symmetric=True, granularity="channel", axis=0)
    x_q = quantize(x, s_scale, s_zp, 8)
    sym_y = qops.int8_scaled_mm(x_q, s_scale.reshape(-1), s_zp.reshape(-1), layer.w_q, layer.w_scale,
                                layer.w_colsum, None, layer.bias, torch.float32)
    sym = sqnr_db(ref, sym_y)
    assert asym > sym + 4.0, (asym, sym)
    q, scale, zp = qops.quantize_per_token(x)
    no_correction = qops.int8_scaled_mm(q, scale, torch.zeros_like(zp), layer.w_q, layer.w_scale, layer.w_colsum,
                                        None, layer.bias, torch.float32)
    assert sqnr_db(ref, no_correction) < 0


def test_clip_search_never_worse_and_changes_only_scales():
    lin = gaussian_linear()
    with torch.no_grad():  # heavy tails: clipping pays off
        lin.weight.copy_(torch.distributions.StudentT(3.0).sample((N, K)) * 0.02)
    w = lin.weight.detach()
    for symmetric in (True, False):
        plain = QuantLinear.from_float(lin, GroupWeightOnlyConfig(4, 32, symmetric))
        clipped = QuantLinear.from_float(lin, GroupWeightOnlyConfig(4, 32, symmetric, clip_search=True))
        err_plain = (plain.dequantize_weight() - w).pow(2).reshape(N, K // 32, 32).sum(-1)
        err_clip = (clipped.dequantize_weight() - w).pow(2).reshape(N, K // 32, 32).sum(-1)
        assert bool((err_clip <= err_plain).all())  # per group
        assert err_clip.sum() < 0.98 * err_plain.sum()
        for name in ("w_q", "w_scale", "w_zp"):
            assert getattr(plain, name).shape == getattr(clipped, name).shape
            assert getattr(plain, name).dtype == getattr(clipped, name).dtype
        assert plain.bits_per_weight == clipped.bits_per_weight
        ratios = clipped.w_scale / plain.w_scale
        assert float(ratios.min()) >= min(CLIP_RATIOS) - 1e-6 and float(ratios.max()) <= 1 + 1e-6


# --- from_quantized ------------------------------------------------------------------------------------------------
def test_from_quantized_rebuilds_the_same_layer():
    lin = gaussian_linear()
    w = lin.weight.detach()
    for config in (W8A8DynamicConfig(), GroupWeightOnlyConfig(4, 32, False), CodebookConfig(3, 64)):
        built = QuantLinear.from_float(lin, config)
        tensors = type(built).quantize_weight(w, config)
        again = QuantLinear.from_quantized(config, bias=lin.bias.detach(), **tensors)
        assert type(again) is type(built)
        for (name, a), (_, b) in zip(built.state_dict().items(), again.state_dict().items()):
            assert torch.equal(a, b), name


def test_from_quantized_takes_external_integer_weights():
    """What a calibration algorithm (GPTQ, ...) hands over: unpacked q, its scales and zero points."""
    q = torch.randint(-8, 8, (N, K), dtype=torch.int32)
    scale = torch.rand(N, K // 32) + 0.01
    zp = torch.randint(-8, 8, (N, K // 32))
    layer = QuantLinear.from_quantized(GroupWeightOnlyConfig(4, 32, symmetric=False), q=q, scale=scale,
                                       zero_point=zp)
    assert isinstance(layer, WeightOnlyLinear)
    w_hat = dequantize(q, scale, zp.int(), axis=-1, group_size=32)
    assert torch.equal(layer.dequantize_weight(), w_hat)
    x = torch.randn(4, K)
    assert torch.equal(layer(x), x @ w_hat.T)


def test_from_quantized_static_with_known_activation_ranges():
    lin = gaussian_linear()
    tensors = W8A8StaticLinear.quantize_weight(lin.weight.detach(), W8A8StaticConfig())
    layer = QuantLinear.from_quantized(W8A8StaticConfig(), bias=lin.bias.detach(), **tensors,
                                       x_scale=torch.tensor([0.03]), x_zp=torch.tensor([-3], dtype=torch.int32))
    assert layer.is_calibrated
    x = torch.randn(M, K)
    assert sqnr_db(lin(x).detach(), layer(x)) > 30


@pytest.mark.parametrize("config,kwargs,exc,match", [
    (GroupWeightOnlyConfig(4, 32), dict(q=torch.zeros(N, K, dtype=torch.int8), scale=torch.ones(N, 4)),
     ValueError, "scale: expected shape"),
    (GroupWeightOnlyConfig(4, 32, symmetric=True), dict(q=torch.full((N, K), 9, dtype=torch.int8),
                                                        scale=torch.ones(N, K // 32)),
     ValueError, r"q: values must lie in \[-8, 7\]"),
    (GroupWeightOnlyConfig(4, 32), dict(q=torch.zeros(N, K), scale=torch.ones(N, K // 32)), TypeError, "q: expected"),
    (GroupWeightOnlyConfig(4, 32, symmetric=False), dict(q=torch.zeros(N, K, dtype=torch.int8),
                                                         scale=torch.ones(N, K // 32)), ValueError, "zero_point"),
    (GroupWeightOnlyConfig(4, 32, symmetric=True), dict(q=torch.zeros(N, K, dtype=torch.int8),
                                                        scale=torch.zeros(N, K // 32)),
     ValueError, "scale: expected finite scales > 0"),
    (W8A8DynamicConfig(), dict(q=torch.zeros(N, K, dtype=torch.int8), scale=torch.ones(N, 1)), ValueError, "scale"),
    (W8A8DynamicConfig(), dict(q=torch.full((N, K), 128), scale=torch.ones(N)), ValueError,
     r"q: values must lie in \[-128, 127\]"),
    (CodebookConfig(2), dict(indices=torch.full((N, K), 4), codebook=torch.zeros(N, 4)), ValueError,
     r"indices: values must lie in \[0, 3\]"),
    (CodebookConfig(2), dict(indices=torch.zeros(N, K, dtype=torch.long), codebook=torch.zeros(N, 8)), ValueError,
     "codebook: expected shape"),
])
def test_from_quantized_rejects_bad_tensors(config, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        QuantLinear.from_quantized(config, **kwargs)


# --- accounting, repr, buffers, dtype moves -----------------------------------------------------------------------
@pytest.mark.parametrize("config,bits", [
    (W8A8DynamicConfig(), 8 + 32 / K + 32 / K),  # int8 payload, fp32 scale and int32 column sum per row
    (Int8WeightOnlyConfig(), 8 + 32 / K + 8 / K),  # fp32 scale, int8 zero point per row
    (GroupWeightOnlyConfig(4, 32), 4 + 32 / 32 + 8 / 32),  # per group of 32: fp32 scale + int8 zero point
    (GroupWeightOnlyConfig(4, 128), 4 + 40 / 128),
    (CodebookConfig(3), 4 + 8 * 32 / K),  # 3-bit indices in 4-bit containers, 8 fp32 centroids per row
    (CodebookConfig(2, 64), 2 + 4 * 32 / 64),
    (W8A8StaticConfig(), 8 + 64 / K + (4 + 4 + 1) * 8 / (N * K)),  # + S_X, Z_X, calibrated flag for the layer
])
def test_bits_per_weight_counts_everything_stored(config, bits):
    layer = QuantLinear.from_float(gaussian_linear(), config)
    assert layer.bits_per_weight == pytest.approx(bits, rel=1e-12)
    assert all(not p for p in layer.parameters())
    assert layer.weight_bytes == sum(t.numel() * t.element_size() for n, t in layer.state_dict().items()
                                     if n not in ("bias", "qscheme", "w_layout"))


def test_extra_repr_shows_the_scheme():
    text = repr(QuantLinear.from_float(gaussian_linear(), GroupWeightOnlyConfig(4, 64, symmetric=False)))
    assert "GroupWeightOnlyConfig(bits=4, group_size=64, symmetric=False" in text and "bits_per_weight=" in text
    assert "in_features=256" in text and "out_features=96" in text


def test_casting_the_model_keeps_scales_exact_and_casts_the_bias():
    lin = gaussian_linear()
    layer = QuantLinear.from_float(lin, GroupWeightOnlyConfig(4, 32))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    model = nn.Sequential(layer).to(torch.bfloat16)
    after = model[0].state_dict()
    for name, t in before.items():
        if name == "bias":
            assert after[name].dtype == torch.bfloat16
        else:
            assert after[name].dtype == t.dtype and torch.equal(after[name], t), name
    model.half()
    assert model[0].w_scale.dtype == torch.float32 and model[0].bias.dtype == torch.float16
    assert model(torch.randn(3, K, dtype=torch.float16)).dtype == torch.float16


def test_scheme_classes():
    lin = gaussian_linear()
    for config, cls in ((W8A8DynamicConfig(), W8A8Linear), (W8A8StaticConfig(), W8A8StaticLinear),
                        (Int8WeightOnlyConfig(), WeightOnlyLinear), (CodebookConfig(2), CodebookLinear)):
        layer = QuantLinear.from_float(lin, config)
        assert type(layer) is cls and isinstance(layer, QuantLinear) and layer.config == config


# --- odd but valid inputs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [W8A8DynamicConfig(), W8A8StaticConfig(output="int8"), Int8WeightOnlyConfig(),
                                    GroupWeightOnlyConfig(4, 32), CodebookConfig(3)], ids=repr)
def test_empty_batch_and_non_contiguous_inputs(config):
    lin = gaussian_linear()
    layer = QuantLinear.from_float(lin, config)
    if isinstance(layer, W8A8StaticLinear):
        layer = calibrated(lin, config, [torch.randn(M, K)])
    assert layer(torch.randn(0, K)).shape == (0, N)
    assert layer(torch.randn(2, 0, K, dtype=torch.bfloat16)).shape == (2, 0, N)
    base = torch.randn(K, 2 * M)
    x = base.T[::2]  # (M, K), strides (1, K)·2: not contiguous
    assert not x.is_contiguous()
    assert torch.equal(layer(x), layer(x.contiguous()))


# --- bad input -----------------------------------------------------------------------------------------------------
def test_in_features_not_divisible_by_group_size():
    with pytest.raises(ValueError, match=r"in_features: 96 is not divisible by group_size=64"):
        QuantLinear.from_float(nn.Linear(96, 8), GroupWeightOnlyConfig(4, 64))
    with pytest.raises(ValueError, match=r"in_features: 96 is not divisible by group_size=64"):
        QuantLinear.from_float(nn.Linear(96, 8), CodebookConfig(4, 64))
    with pytest.raises(ValueError, match=r"in_features: 6 must be a multiple of 4"):
        QuantLinear.from_float(nn.Linear(6, 8), CodebookConfig(2))


def test_wrong_input_last_dimension_and_dtype():
    layer = QuantLinear.from_float(gaussian_linear(), W8A8DynamicConfig())
    with pytest.raises(ValueError, match=r"input: expected last dimension in_features=256, got shape \(4, 255\)"):
        layer(torch.randn(4, 255))
    with pytest.raises(ValueError, match="in_features=256"):
        layer(torch.tensor(1.0))
    with pytest.raises(TypeError, match="input: expected a bfloat16, float16 or float32 tensor, got int64"):
        layer(torch.ones(4, K, dtype=torch.int64))
    with pytest.raises(TypeError, match="got float64"):
        layer(torch.ones(4, K, dtype=torch.float64))
    with pytest.raises(TypeError, match="input: expected a tensor"):
        layer([1.0] * K)


@pytest.mark.parametrize("config", [W8A8DynamicConfig(), GroupWeightOnlyConfig(4, 32), CodebookConfig(3)], ids=repr)
def test_nan_in_weight_at_conversion(config):
    lin = gaussian_linear()
    with torch.no_grad():
        lin.weight[3, 5] = float("nan")
        lin.weight[4, 5] = float("inf")
    with pytest.raises(ValueError, match="linear.weight: contains 1 NaN and 1 Inf values"):
        QuantLinear.from_float(lin, config)


def test_bad_configs_and_layers():
    with pytest.raises(ValueError, match="bits"):
        GroupWeightOnlyConfig(bits=3)
    with pytest.raises(ValueError, match="group_size"):
        GroupWeightOnlyConfig(group_size=48)
    with pytest.raises(TypeError, match="symmetric"):
        GroupWeightOnlyConfig(symmetric=1)
    with pytest.raises(ValueError, match="bits"):
        CodebookConfig(bits=9)
    with pytest.raises(ValueError, match="observer"):
        W8A8StaticConfig(observer="mse")
    with pytest.raises(ValueError, match="output"):
        W8A8StaticConfig(output="int4")
    with pytest.raises(ValueError, match="percentile"):
        W8A8StaticConfig(percentile=20)
    with pytest.raises(TypeError, match="config: expected one of"):
        QuantLinear.from_float(nn.Linear(64, 8), "int4")
    with pytest.raises(TypeError, match="linear: expected an nn.Linear"):
        QuantLinear.from_float(nn.Conv1d(4, 4, 1), W8A8DynamicConfig())
    with pytest.raises(TypeError, match="linear.weight: expected a bfloat16, float16 or float32 weight"):
        QuantLinear.from_float(nn.Linear(64, 8).double(), W8A8DynamicConfig())


def test_static_layer_refuses_to_run_uncalibrated():
    layer = QuantLinear.from_float(gaussian_linear(), W8A8StaticConfig())
    with pytest.raises(RuntimeError, match="not calibrated; run qtorch.calibrate"):
        layer(torch.randn(2, K))
    layer = QuantLinear.from_float(gaussian_linear(), W8A8StaticConfig())
    with pytest.raises(RuntimeError, match="output='float'"):
        layer.forward_int8(torch.zeros(2, K, dtype=torch.int8))
