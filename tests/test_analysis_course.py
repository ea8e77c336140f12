"""The course's numbers (reference notes) reproduced by the analytic model, and the published parameter counts."""
import pytest

from qtorch.analysis import (GPT3_TABLE, PRESETS, activation_memory, attention_pairs, bytes_per_param,
                             count_params, forward_flops, from_hf_config, from_llama_config, get_preset,
                             kv_cache_bytes, mfu, model_state_memory, training_flops)

LLAMA2_7B = dict(b=1, s=4096, h=4096, n=32, d=128, i=11008, v=32000, N=32)


def course_formula(b, s, h, n, d, i, v, N):
    """The course's total: N(6bsh² + 4bs²h + 3bs²n + 2bsh²) + N·6bshi + 2bshv."""
    return N * (6 * b * s * h * h + 4 * b * s * s * h + 3 * b * s * s * n + 2 * b * s * h * h) \
        + N * 6 * b * s * h * i + 2 * b * s * h * v


@pytest.mark.parametrize("name, expected", [
    ("llama2-7b", 6_738_415_616), ("llama2-13b", 13_015_864_320), ("llama2-70b", 68_976_648_192),
    ("llama3-8b", 8_030_261_248), ("gpt3-175b", 174_604_259_328), ("gpt3-small", 125_226_240)])
def test_published_parameter_counts_exact(name, expected):
    assert count_params(get_preset(name)) == expected


@pytest.mark.parametrize("name", list(GPT3_TABLE))
def test_gpt3_presets_match_the_table_nominal_sizes(name):
    exact, nominal = count_params(PRESETS[name]), GPT3_TABLE[name]["n_params"]
    assert abs(exact - nominal) / nominal < 0.02, (name, exact, nominal)


def test_llama2_7b_forward_is_62_97_tflops_with_the_course_formula():
    fwd = forward_flops(get_preset("llama2-7b"), 1, 4096, "course")
    assert fwd.total == course_formula(**LLAMA2_7B)
    assert round(fwd.total / 1e12, 2) == 62.97
    assert fwd.total - fwd.matmul_total == 32 * 3 * 4096 ** 2 * 32  # only the softmax 3bs²n is elementwise


def test_training_is_three_times_forward():
    cfg = get_preset("llama2-7b")
    train = training_flops(cfg, 1, 4096, "course")
    assert train.backward == 2 * train.forward and train.model_flops == 3 * train.forward
    assert round(train.model_flops / 1e12, 2) == 188.92  # 3 × 62.97, not the course's 192.17
    ckpt = training_flops(cfg, 1, 4096, "course", checkpointing="layer")
    assert ckpt.model_flops == train.model_flops
    assert ckpt.recompute == ckpt.forward - 2 * 4096 * 4096 * 32000  # every layer again, not the head


def test_course_192_17_tflops_breakdown_reconstructed():
    """The breakdown's total and all six published shares, from the 'course-breakdown' conventions."""
    cfg = get_preset("llama2-7b")
    train = training_flops(cfg, 1, 4096, "course-breakdown")
    assert round(train.model_flops / 1e12, 2) == 192.17
    shares = {k: round(100 * v / train.model_flops, 3) for k, v in train.by_category().items()}
    assert shares == {"embedding": 1.676, "normalization": 0.007, "residual": 0.003, "attention": 41.276,
                      "mlp": 55.361, "head": 1.676}
    # why 192.17 ≠ 3 × 62.97: the embedding counted as a matmul (2bshv) plus elementwise terms
    b, s, h, v, i, N = 1, 4096, 4096, 32000, 11008, 32
    extra = training_flops(cfg, 1, 4096, "course-breakdown").forward - forward_flops(cfg, 1, 4096, "course").total
    embedding, mlp_elementwise = 2 * b * s * h * v, N * 2 * b * s * i
    norms, residuals = (2 * N + 1) * (4 * b * s * h + 2 * b * s), 2 * N * 2 * b * s * h
    assert extra == embedding + mlp_elementwise + norms + residuals
    assert 3 * embedding / (train.model_flops - 3 * course_formula(**LLAMA2_7B)) > 0.99


def test_gqa_and_causal_switches():
    cfg = get_preset("llama2-70b")  # 64 query heads, 8 KV heads
    course = {r.name: r.flops for r in forward_flops(cfg, 1, 4096, "course").rows}
    exact = {r.name: r.flops for r in forward_flops(cfg, 1, 4096, "qtorch").rows}
    assert exact["attention.wk"] * 8 == course["attention.wk"] and exact["attention.wq"] == course["attention.wq"]
    assert exact["attention.qk"] * 4096 == course["attention.qk"] * (4096 + 1) // 2
    assert attention_pairs(5, 0, True) == 15 and attention_pairs(1, 7, True) == 8 and attention_pairs(3, 2, False) == 15


def test_gpt3_175b_memory_16_bytes_per_param():
    mem = model_state_memory(175e9, "amp-fp16", "adam")
    assert mem == {"weights": 350e9, "gradients": 350e9, "masters": 700e9, "optimizer_states": 1400e9}
    assert sum(bytes_per_param("amp-fp16", "adam").values()) == 16
    exact = model_state_memory(count_params(get_preset("gpt3-175b")), "amp-fp16", "adam")
    assert abs(sum(exact.values()) - 2800e9) / 2800e9 < 0.003


def test_gpt3_175b_checkpointed_activations_at_the_course_batch():
    """N · (3.2M tokens) · h · 2 bytes = 7,549.7 GB; the course's 7,488 GB is 96 × 78 GB (78.6 GB rounded down)."""
    acts = activation_memory(get_preset("gpt3-175b"), 1600, 2000, act_bytes=2, checkpointing="layer")
    assert acts.checkpoints == 96 * 3_200_000 * 12288 * 2
    assert abs(acts.checkpoints - 7488e9) / 7488e9 < 0.01
    assert 96 * int(3_200_000 * 12288 * 2 / 1e9) == 7488


def test_other_recipes_zero_and_kv_cache():
    assert sum(bytes_per_param("fp32", "adam").values()) == 16
    assert sum(bytes_per_param("pure-bf16", "adam").values()) == 8
    assert sum(bytes_per_param("amp-bf16", "sgd").values()) == 8
    assert sum(bytes_per_param("amp-bf16", "adam-8bit").values()) == pytest.approx(10, abs=0.01)
    n = 8e9
    z0, z3 = model_state_memory(n, zero=0, gpus=8), model_state_memory(n, zero=3, gpus=8)
    assert all(z3[k] * 8 == z0[k] for k in z0)
    z1 = model_state_memory(n, zero=1, gpus=8)
    assert z1["weights"] == z0["weights"] and z1["gradients"] == z0["gradients"] and z1["masters"] * 8 == z0["masters"]
    z2 = model_state_memory(n, zero=2, gpus=8)
    assert z2["gradients"] * 8 == z0["gradients"] and z2["weights"] == z0["weights"]
    assert kv_cache_bytes(get_preset("llama2-7b"), 1, 4096) == 2 * 32 * 4096 * 4096 * 2  # 0.5 MiB per token
    assert kv_cache_bytes(get_preset("llama3-8b"), 1, 8192) == 2 * 32 * 8192 * 1024 * 2  # GQA: 8 KV heads


def test_mfu():
    assert mfu(500e12, 1.0, 1000e12) == 0.5 and mfu(800e12, 1.0, 100e12, n_gpus=8) == 1.0


def test_from_hf_config_llama_and_gpt2():
    llama = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 11008,
             "max_position_embeddings": 4096, "hidden_act": "silu", "tie_word_embeddings": False}
    cfg = from_hf_config(llama)
    assert count_params(cfg) == 6_738_415_616 and cfg.mlp == "swiglu" and cfg.norm == "rmsnorm"
    gpt2 = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
            "n_positions": 1024}
    assert count_params(from_hf_config(gpt2)) == 124_439_808  # GPT-2 small


def test_from_llama_config_matches_the_model_zoo():
    from qtorch.models import LLAMA_CONFIGS, build_llama

    for name in ("tiny", "small"):
        model = build_llama(name)
        assert count_params(from_llama_config(LLAMA_CONFIGS[name])) == sum(p.numel() for p in model.parameters())
