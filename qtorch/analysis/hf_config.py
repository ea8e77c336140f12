"""Reading Hugging Face configs for the analysis: a transformers PretrainedConfig, a config.json path, a hub-style
folder holding one, or the dict itself; and the check that the architecture is one ModelConfig describes.

Modelled: LLaMA-family decoders (model_type llama — LLaMA-2/3 — and mistral: RMSNorm, RoPE, SwiGLU, GQA, tied or
untied head) and GPT-2-style ones (gpt2, gpt_neo, opt). Anything else is a ValueError naming what is missing,
never a decoder read by guesswork: encoders (BERT/MiniLM: post-LN, GELU, no causal mask, token-type embeddings) and
Qwen2 (biases on q/k/v only) need ModelConfig fields it does not have yet.
"""
import json
import os
from collections.abc import Mapping
from pathlib import Path

LLAMA_FAMILY = ("llama", "mistral")
GPT2_STYLE = ("gpt2", "gpt_neo", "opt")
_NOT_MODELLED = {
    "bert": "an encoder (post-LN, GELU, no causal mask, token-type embeddings, pooler)",
    "roberta": "an encoder (post-LN, GELU, no causal mask)",
    "distilbert": "an encoder (post-LN, GELU, no causal mask)",
    "qwen2": "a decoder with biases on the q/k/v projections only (ModelConfig.bias puts them on every linear)",
}


def hf_config_dict(source) -> tuple[dict, str | None]:
    """(config.json contents, a name) from a dict, a transformers PretrainedConfig, a config.json path or a folder."""
    if isinstance(source, Mapping):
        return dict(source), None
    if hasattr(source, "to_dict") and hasattr(source, "model_type"):  # a transformers PretrainedConfig
        return source.to_dict(), getattr(source, "name_or_path", None) or None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"config: no config.json at {os.fspath(source)!r}")
        with open(path) as f:
            return json.load(f), path.resolve().parent.name
    raise TypeError(f"config: expected a dict (a config.json), a transformers PretrainedConfig, or the path of a "
                    f"config.json or its folder, got {type(source).__name__}")


def check_architecture(config: dict) -> None:
    """Raise unless ModelConfig describes this model_type (a dict without model_type is read as LLaMA-style keys)."""
    model_type = config.get("model_type")
    if not model_type or model_type in LLAMA_FAMILY or model_type in GPT2_STYLE:
        return
    what = _NOT_MODELLED.get(model_type, "an architecture qtorch.analysis does not model")
    raise ValueError(f"config: model_type {model_type!r} is {what}; supported: "
                     f"{', '.join(LLAMA_FAMILY + GPT2_STYLE)}")


def architecture_notes(config: dict) -> str:
    """Quirks of the config that the counts do not include."""
    window = config.get("sliding_window")
    if window and config.get("use_sliding_window", True):
        return f"sliding_window={window} not modelled: attention counts are exact for sequences ≤ {window}"
    return ""
