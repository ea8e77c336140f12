"""Reading Hugging Face configs for the analysis: a transformers PretrainedConfig, a config.json path, a hub-style
folder holding one, or the dict itself; the check that the architecture is one ModelConfig describes, and the
ModelConfig fields that describe it.

Modelled (model_type -> architecture):
  llama, mistral: pre-RMSNorm decoders, RoPE, gated MLP, grouped-query attention, tied or untied head, optional
    biases (attention_bias on q/k/v/o, mlp_bias on the MLP);
  qwen2: the same with biases on the q/k/v projections only;
  gpt2, gpt_neo, opt: pre-LayerNorm decoders, learned positions, GELU MLP, biases, tied head;
  bert (BertModel, e.g. all-MiniLM-L6-v2): a post-LayerNorm encoder, GELU MLP, no causal mask, learned absolute
    positions, token-type embeddings, an embedding LayerNorm and the pooler (tanh(W·h_[CLS] + b)), no LM head.
Anything else is a ValueError naming what is not modelled, never a model read by guesswork.
"""
import json
import os
from collections.abc import Mapping
from pathlib import Path

LLAMA_FAMILY = ("llama", "mistral", "qwen2")
GPT2_STYLE = ("gpt2", "gpt_neo", "opt")
ENCODERS = ("bert",)
_NOT_MODELLED = {
    "roberta": "an encoder whose positions start after the padding index and which has no token types in use",
    "distilbert": "an encoder without token-type embeddings or pooler, with its own config keys",
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


def _refuse(model_type: str, what: str):
    raise ValueError(f"config: model_type {model_type!r} is {what}; qtorch.analysis models "
                     f"{', '.join(LLAMA_FAMILY + GPT2_STYLE)} decoders and the {', '.join(ENCODERS)} encoder "
                     f"(BertModel)")


def check_architecture(config: dict) -> str:
    """The family ModelConfig reads this config as ("llama", "gpt2" or "bert"); a ValueError for anything it does
    not model. A dict without model_type is read as LLaMA-style keys (GPT-2-style if it has n_embd)."""
    model_type = config.get("model_type")
    if not model_type:
        return "gpt2" if "n_embd" in config else "llama"
    if model_type in LLAMA_FAMILY:
        return "llama"
    if model_type in GPT2_STYLE:
        return "gpt2"
    if model_type in ENCODERS:
        _check_bert(config)
        return "bert"
    _refuse(model_type, _NOT_MODELLED.get(model_type, "an architecture qtorch.analysis does not model"))


def _check_bert(config: dict) -> None:
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        _refuse("bert", f"modelled with absolute position embeddings only, not position_embedding_type={position!r}")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        _refuse("bert", "modelled as an encoder only (is_decoder / add_cross_attention set)")
    act = str(config.get("hidden_act", "gelu"))
    if not act.startswith("gelu"):
        _refuse("bert", f"modelled with a GELU MLP, not hidden_act={act!r}")
    heads = [a for a in config.get("architectures") or () if a != "BertModel"]
    if heads:
        _refuse("bert", f"modelled as BertModel (encoder + pooler), not {heads} (its task head is not modelled; "
                        f"set architectures to ['BertModel'] to count the encoder alone)")


def _bias_kind(attention: bool, mlp: bool) -> str:
    if mlp and not attention:
        raise ValueError("config: mlp_bias without attention_bias is not modelled (ModelConfig.bias: "
                         "'none', 'qkv', 'attention' or 'all')")
    return "all" if mlp else "attention" if attention else "none"


def architecture_fields(config: dict, family: str) -> dict:
    """The ModelConfig fields besides the sizes (mlp, norm, norm_position, position, bias, causal, token_types,
    head, tie_embeddings, notes) of a config of this family."""
    if family == "bert":
        return dict(mlp="gelu", norm="layernorm", norm_position="post", position="learned", bias="all",
                    causal=False, token_types=int(config.get("type_vocab_size", 2)), head="pooler",
                    tie_embeddings=False, notes=_notes(config))
    if family == "gpt2":
        return dict(mlp="gelu", norm="layernorm", position="learned", bias="all",
                    tie_embeddings=bool(config.get("tie_word_embeddings", True)), notes=_notes(config))
    notes = _notes(config)
    act = str(config.get("hidden_act", "silu"))
    if act not in ("silu", "swish"):
        notes = "; ".join(filter(None, (notes, f"hidden_act={act!r}: the gated MLP's activation counted as Swish")))
    bias = "qkv" if config.get("model_type") == "qwen2" else _bias_kind(bool(config.get("attention_bias")),
                                                                         bool(config.get("mlp_bias")))
    return dict(mlp="swiglu", norm="rmsnorm", position="rope", bias=bias,
                tie_embeddings=bool(config.get("tie_word_embeddings", False)), notes=notes)


def _notes(config: dict) -> str:
    """Quirks of the config that the counts do not include."""
    window = config.get("sliding_window")
    if window and config.get("use_sliding_window", True):
        return f"sliding_window={window} not modelled: attention counts are exact for sequences ≤ {window}"
    return ""
