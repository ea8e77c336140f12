"""model.generate on a model quantized through qtorch.hf: quantize on load (device_map), save_pretrained, reload
bit-exactly, then the greedy tokens of the eager model equal those of the model compiled by transformers'
static-cache + torch.compile path (fullgraph: qtorch ops trace as one graph).

CPU: the compiled path uses the "aot_eager" backend — the same Dynamo / AOTAutograd capture of the decode step as on
a GPU, without Inductor's C++ code generation, which takes minutes on a shared CPU. CUDA: Inductor with
transformers' default CompileConfig (mode "reduce-overhead": CUDA graphs), the path benchmarks/bench_hf.py measures.
On CUDA, generate compiles a static-cache decode by itself: the eager reference passes disable_compile=True."""
import pytest
import torch

pytest.importorskip("transformers")

from qtorch.config import GroupWeightOnlyConfig, W8A8DynamicConfig  # noqa: E402
from qtorch.nn.base import QuantLinear  # noqa: E402
from tests._hf_models import save_float, tiny_causal_lm  # noqa: E402

from qtorch.hf import QtorchConfig  # noqa: E402
from transformers import AutoModelForCausalLM, CompileConfig  # noqa: E402

NEW_TOKENS = 8
SCHEMES = [GroupWeightOnlyConfig(bits=4, group_size=64), W8A8DynamicConfig()]  # int4 g64: the tiled layout
SCHEME_IDS = ["w4a16", "w8a8"]


def _greedy(model, ids, compile_config=None):
    """Greedy decoding with a static cache: compiled with compile_config, eager without."""
    return model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, cache_implementation="static",
                          pad_token_id=0, compile_config=compile_config, disable_compile=compile_config is None)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _round_trip_and_generate(tmp_path, scheme, device: str, compile_config: CompileConfig):
    """Quantize a tiny tied-head LLaMA on load onto `device` (device_map), save, reload: every tensor and the logits
    bit-exact; then eager and compiled greedy tokens equal, the compiled decode step captured by Dynamo.

    float32 activations: with random weights the top two logits can be close, and a compiler's different rounding of
    the non-qtorch ops (norms, RoPE) in bf16 could flip a token; bf16 speed is benchmarks/bench_hf.py's job."""
    pytest.importorskip("accelerate")  # transformers needs it for device_map
    torch.manual_seed(0)
    path = save_float(tiny_causal_lm("llama", tie=True), tmp_path / "float")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, device_map=device,
                                                 quantization_config=QtorchConfig(scheme=scheme))
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 14  # 2 layers × 7; the tied head stays float
    assert {t.device.type for t in model.state_dict().values()} == {device}

    model.save_pretrained(tmp_path / "quantized")
    restored = AutoModelForCausalLM.from_pretrained(tmp_path / "quantized", device_map=device)
    for (name, a), (name_b, b) in zip(model.state_dict().items(), restored.state_dict().items(), strict=True):
        assert name == name_b and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b), name
    ids = torch.randint(3, 128, (2, 7), device=device)
    assert torch.equal(_logits(restored, ids), _logits(model, ids))

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # reset() keeps them
    eager = _greedy(restored, ids)
    assert eager.shape == (2, 7 + NEW_TOKENS)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0  # really eager
    compiled = _greedy(restored, ids, compile_config)
    # the decode step, captured whole (fullgraph) and, on the CPU, once; a recompile on another device is not a
    # wrong result
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs == 1 if device == "cpu" else graphs >= 1
    assert torch.equal(compiled, eager)


def test_round_trip_and_greedy_tokens_equal_eager_and_compiled(tmp_path):
    config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    config._compile_all_devices = True  # transformers compiles automatically on accelerators only; CPU asks for it
    _round_trip_and_generate(tmp_path, SCHEMES[0], "cpu", config)


@pytest.mark.cuda
@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
def test_round_trip_and_greedy_tokens_equal_eager_and_inductor_cuda(tmp_path, scheme):
    _round_trip_and_generate(tmp_path, scheme, "cuda", CompileConfig(fullgraph=True))


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
