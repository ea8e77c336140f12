"""Tiny transformers models with random weights, saved as float checkpoints, for the tests of qtorch.hf (offline)."""
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def tiny_causal_lm(kind: str, tie: bool = False):
    """A 2-layer LLaMA or Mistral (GQA: 4 query heads, 2 key/value heads) with random weights, in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    sizes = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tie)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**sizes)).eval()
    return MistralForCausalLM(MistralConfig(sliding_window=None, **sizes)).eval()


def save_float(model, path) -> str:
    model.save_pretrained(str(path))
    return str(path)
