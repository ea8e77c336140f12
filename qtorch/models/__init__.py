"""Model zoo: a LLaMA-style decoder with presets from tiny (CPU tests) to LLaMA-2-7B-shaped."""
from qtorch.models.llama import LLAMA_CONFIGS, Llama, LlamaConfig, RMSNorm, build_llama, get_config

__all__ = ["LLAMA_CONFIGS", "Llama", "LlamaConfig", "RMSNorm", "build_llama", "get_config"]
