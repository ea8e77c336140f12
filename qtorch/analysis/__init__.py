"""FLOP, parameter and memory accounting with every convention explicit (docs/ANALYSIS.md).

Analytic: ModelConfig (presets, from_llama_config, from_hf_config) -> count_params, forward_flops, training_flops,
mfu, model_state_memory, activation_memory, kv_cache_bytes, training_step_peak, inference_peak.
Measured: count_flops(model, inputs) (FlopCounterMode + formulas for SDPA on CPU, the causal mask, qtorch ops),
measure_memory(step_fn) (CUDA memory stats, or a tensor-tracking estimate).
Command line: python -m qtorch.analysis llama2-7b --batch 1 --seq 4096 [--train ...] [--plot out.png].
"""
from qtorch.analysis.config import ModelConfig, from_hf_config, from_llama_config
from qtorch.analysis.conventions import CONVENTIONS, FlopConventions, get_conventions
from qtorch.analysis.counting import FlopCount, causal_pairs, count_flops
from qtorch.analysis.flops import (CATEGORIES, GPU_PEAK_TFLOPS, FlopBreakdown, FlopRow, TrainingFlops,
                                   attention_pairs, forward_flops, mfu, peak_flops, training_flops)
from qtorch.analysis.measure import MemoryMeasurement, measure_memory
from qtorch.analysis.memory import (OPTIMIZERS, RECIPES, WEIGHT_FORMATS, ActivationMemory, activation_memory,
                                    bytes_per_param, kv_cache_bytes, layer_activation_rows, linear_weight_bytes,
                                    model_state_memory, model_weight_bytes)
from qtorch.analysis.params import count_params, non_embedding_params, param_counts
from qtorch.analysis.peak import PeakMemory, inference_peak, training_step_peak
from qtorch.analysis.presets import GPT3_TABLE, PRESETS, get_preset

__all__ = [
    "ModelConfig", "from_hf_config", "from_llama_config", "PRESETS", "GPT3_TABLE", "get_preset",
    "count_params", "param_counts", "non_embedding_params",
    "FlopConventions", "CONVENTIONS", "get_conventions", "CATEGORIES", "FlopRow", "FlopBreakdown", "TrainingFlops",
    "attention_pairs", "forward_flops", "training_flops", "mfu", "peak_flops", "GPU_PEAK_TFLOPS",
    "RECIPES", "OPTIMIZERS", "WEIGHT_FORMATS", "bytes_per_param", "model_state_memory", "ActivationMemory",
    "activation_memory", "layer_activation_rows", "kv_cache_bytes", "linear_weight_bytes", "model_weight_bytes",
    "PeakMemory", "training_step_peak", "inference_peak",
    "FlopCount", "count_flops", "causal_pairs", "MemoryMeasurement", "measure_memory",
]
