"""Bad input gets a ValueError / TypeError naming the argument and what was expected."""
import pytest

from qtorch.analysis import (ModelConfig, activation_memory, count_flops, forward_flops, from_hf_config,
                             from_llama_config, get_conventions, get_preset, inference_peak, kv_cache_bytes,
                             linear_weight_bytes, measure_memory, mfu, model_state_memory, model_weight_bytes,
                             peak_flops, training_flops, training_step_peak)

BASE = dict(name="m", vocab_size=100, hidden_size=64, n_layers=2, n_heads=4, intermediate_size=128)


@pytest.mark.parametrize("changes, match", [
    ({"hidden_size": 100, "n_heads": 3}, "hidden_size: 100 is not divisible by n_heads=3"),
    ({"hidden_size": 0}, "hidden_size: expected a positive int"),
    ({"n_layers": -2}, "n_layers: expected a positive int"),
    ({"vocab_size": 3.5}, "vocab_size: expected a positive int"),
    ({"n_heads": True}, "n_heads: expected a positive int"),
    ({"n_kv_heads": 3}, "n_kv_heads: expected a divisor of n_heads=4"),
    ({"head_dim": 0}, "head_dim: expected a positive int"),
    ({"mlp": "relu"}, "mlp: expected one of"),
    ({"norm": "batchnorm"}, "norm: expected one of"),
    ({"position": "alibi"}, "position: expected one of"),
    ({"name": ""}, "name: expected a non-empty str"),
    ({"norm_position": "sandwich"}, "norm_position: expected one of 'pre', 'post'"),
    ({"head": "classifier"}, "head: expected one of 'lm', 'pooler', 'none'"),
    ({"bias": "mlp"}, "bias: expected one of 'none', 'qkv', 'attention', 'all'"),
    ({"token_types": -1}, "token_types: expected a positive int"),
    ({"head": "pooler", "tie_embeddings": True}, "tie_embeddings: only an LM head can share"),
])
def test_bad_model_config(changes, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{**BASE, **changes})


def test_bias_flag_reads_as_every_or_no_linear():
    assert ModelConfig(**BASE, bias=True).bias == "all" and ModelConfig(**BASE, bias=False).bias == "none"
    with pytest.raises(TypeError, match="causal: expected a bool"):
        ModelConfig(**BASE, causal=0)


def test_explicit_head_dim_allows_attention_width_other_than_hidden():
    cfg = ModelConfig(**{**BASE, "hidden_size": 100, "n_heads": 3, "head_dim": 32})
    assert cfg.q_dim == 96


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'llama9'.*valid presets: llama2-7b, .*gpt3-175b"):
        get_preset("llama9")
    with pytest.raises(TypeError, match="name: expected a preset name"):
        get_preset(7)


def test_hf_config_missing_fields():
    with pytest.raises(ValueError, match=r"missing required fields: n_layers \(one of num_hidden_layers"):
        from_hf_config({"vocab_size": 10, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128})
    with pytest.raises(FileNotFoundError, match="config: no config.json at 'no/such/config.json'"):
        from_hf_config("no/such/config.json")
    with pytest.raises(TypeError, match="config: expected a dict"):
        from_hf_config(3)
    with pytest.raises(TypeError, match="cfg: expected a LlamaConfig"):
        from_llama_config(object())


@pytest.mark.parametrize("call, exc, match", [
    (lambda c: forward_flops(c, 0, 16), ValueError, "batch: expected an int >= 1"),
    (lambda c: forward_flops(c, 1, -1), ValueError, "seq: expected an int >= 1"),
    (lambda c: forward_flops(c, 1, 16, "fvcore"), ValueError, "conventions: unknown 'fvcore'; valid: qtorch"),
    (lambda c: forward_flops({"hidden_size": 1}, 1, 16), TypeError, "cfg: expected a ModelConfig"),
    (lambda c: training_flops(c, 1, 16, checkpointing="some"), ValueError, "checkpointing: expected one of"),
    (lambda c: activation_memory(c, 1, 16, checkpointing="attention"), ValueError, "checkpointing: expected"),
    (lambda c: activation_memory(c, 1, 16, attention="xformers"), ValueError, "attention: expected one of"),
    (lambda c: kv_cache_bytes(c, 1, 0), ValueError, "context: expected an int >= 1"),
    (lambda c: model_state_memory(1e9, recipe="fp8"), ValueError, "recipe: unknown 'fp8'; valid: fp32"),
    (lambda c: model_state_memory(1e9, optimizer="lion"), ValueError, "optimizer: unknown 'lion'; valid: adam"),
    (lambda c: model_state_memory(1e9, zero=4), ValueError, r"zero: expected a ZeRO stage in \(0, 1, 2, 3\)"),
    (lambda c: model_state_memory(1e9, gpus=0), ValueError, "gpus: expected an int >= 1"),
    (lambda c: model_state_memory(-5), ValueError, "n_params: expected > 0"),
    (lambda c: training_step_peak(c, 1, 16, optimizer_impl="apex"), ValueError, "optimizer_impl: expected"),
    (lambda c: training_step_peak(c.with_(head="pooler"), 1, 16), ValueError,
     "training_step_peak replays a language model's step .*head='pooler'"),
    (lambda c: inference_peak(c.with_(head="none"), 1, 16), ValueError, "inference_peak replays a language model"),
    (lambda c: linear_weight_bytes(64, 100, "int4-g32"), ValueError, "group size 32 does not divide K=100"),
    (lambda c: model_weight_bytes(c, "int3-g64"), ValueError, "weight_format: unknown 'int3-g64'"),
    (lambda c: mfu(1e12, 0, 1e15), ValueError, "step_time_s: expected > 0"),
    (lambda c: mfu(1e12, 1, 1e15, n_gpus=0), ValueError, "n_gpus: expected an int >= 1"),
    (lambda c: peak_flops("v100"), ValueError, "gpu: unknown 'v100'; valid: h200"),
    (lambda c: peak_flops("a100", "fp8"), ValueError, "dtype: a100 has no 'fp8' peak"),
    (lambda c: get_conventions("x"), ValueError, "conventions: unknown 'x'"),
    (lambda c: get_conventions("course").with_(rope="k"), ValueError, "rope: expected"),
    (lambda c: get_conventions("course").with_(softmax=-1), ValueError, "softmax: expected a non-negative int"),
    (lambda c: count_flops(3, ()), TypeError, "model: expected an nn.Module or callable"),
    (lambda c: count_flops(abs, 3), TypeError, "inputs: expected a tensor or a tuple"),
    (lambda c: count_flops(abs, (1,), causal="half"), ValueError, "causal: expected one of"),
    (lambda c: measure_memory(5), TypeError, "step_fn: expected a callable"),
    (lambda c: measure_memory(abs, model=5), TypeError, "model: expected an nn.Module or None"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call(ModelConfig(**BASE))
