"""model.generate on a model quantized through qtorch.hf: greedy tokens of the eager model equal those of the
model compiled by transformers' static-cache + torch.compile path (fullgraph: qtorch ops trace as one graph).

CPU: the compiled path uses the "aot_eager" backend — the same Dynamo / AOTAutograd capture of the decode step as on
a GPU, without Inductor's C++ code generation, which takes minutes on a shared CPU. The CUDA test uses Inductor."""
import pytest
import torch

pytest.importorskip("transformers")

from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig  # noqa: E402
from tests._hf_models import save_float, tiny_causal_lm  # noqa: E402

from qtorch.hf import QtorchConfig  # noqa: E402
from transformers import AutoModelForCausalLM, CompileConfig  # noqa: E402

NEW_TOKENS = 8


def _greedy(model, ids, compile_config=None):
    return model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, cache_implementation="static",
                          pad_token_id=0, compile_config=compile_config)


def _compile_config(backend: str) -> CompileConfig:
    config = CompileConfig(fullgraph=True, backend=backend, mode=None if backend != "inductor" else "default")
    config._compile_all_devices = True  # transformers compiles automatically on CUDA only; CPU asks for it
    return config


def _quantized(tmp_path, scheme, dtype=None, device_map=None):
    torch.manual_seed(0)
    path = save_float(tiny_causal_lm("llama", tie=True), tmp_path)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map,
                                                quantization_config=QtorchConfig(scheme=scheme))


def test_greedy_tokens_equal_eager_and_compiled(tmp_path):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # reset() keeps them
    model = _quantized(tmp_path, GroupWeightOnlyConfig(bits=4, group_size=32))
    ids = torch.randint(3, 128, (1, 7))
    eager = _greedy(model, ids)
    assert eager.shape == (1, 7 + NEW_TOKENS)
    compiled = _greedy(model, ids, _compile_config("aot_eager"))
    assert torch.equal(compiled, eager)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # the decode step, captured whole


@pytest.mark.cuda
@pytest.mark.parametrize("scheme", [GroupWeightOnlyConfig(bits=4, group_size=32), W8A8DynamicConfig()],
                         ids=["w4a16", "w8a8"])
def test_greedy_tokens_equal_eager_and_inductor_cuda(tmp_path, scheme):
    """float32 activations: with random weights the top two logits can be close, and Inductor's bf16 rounding of the
    non-qtorch ops (norms, RoPE) could flip a token; bf16 speed is benchmarks/bench_hf.py's job."""
    torch._dynamo.reset()
    model = _quantized(tmp_path, scheme, dtype=torch.float32).to("cuda")  # device_map="cuda" needs accelerate
    ids = torch.randint(3, 128, (1, 7), device="cuda")
    eager = _greedy(model, ids)
    compiled = _greedy(model, ids, _compile_config("inductor"))
    assert torch.equal(compiled, eager)


@pytest.mark.cuda
def test_quantize_on_load_peak_cuda_memory(tmp_path):
    """On the GPU the float model is never whole: peak allocated memory during quantize-on-load stays below the
    float model's bytes."""
    pytest.importorskip("accelerate")
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=256, hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                         num_attention_heads=8, num_key_value_heads=8, tie_word_embeddings=True)
    float_model = LlamaForCausalLM(config).to(torch.bfloat16)
    float_bytes = sum(t.nbytes for t in float_model.state_dict().values())
    path = save_float(float_model, tmp_path)
    del float_model
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda",
                                         quantization_config=QtorchConfig(scheme=GroupWeightOnlyConfig(bits=4)))
    peak = torch.cuda.max_memory_allocated() - base
    print(f"quantize on load: peak {peak:,} bytes on the GPU vs {float_bytes:,} for the bf16 model")
    assert peak < 0.6 * float_bytes
