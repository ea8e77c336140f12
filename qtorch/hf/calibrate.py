"""Calibrated quantization of a loaded transformers model (GPTQ from calibration texts), and `attach_config`, which
makes any qtorch-quantized transformers model save with its QtorchConfig, so `from_pretrained(dir)` restores it.

    model = AutoModelForCausalLM.from_pretrained(path)
    qtorch.hf.gptq_quantize(model, tokenizer, texts, modules_to_not_convert=["lm_head"])
    model.save_pretrained(out)            # quantized weights + config; AutoModelForCausalLM.from_pretrained(out)
"""
import fnmatch

import torch

from qtorch.algorithms import quantize_gptq_
from qtorch.api.quantize import QuantizeSummary
from qtorch.api.serialization import quantized_config
from qtorch.config import GroupWeightOnlyConfig
from qtorch.hf.config import QtorchConfig
from qtorch.hf.quantizer import QtorchHfQuantizer
from qtorch.nn.base import QuantLinear


def attach_config(model, modules_to_not_convert=None) -> QtorchConfig:
    """Record the model's QuantLinear layers (made by qtorch.quantize_, GPTQ, ...) as its quantization_config, so
    that save_pretrained writes it into config.json and a plain from_pretrained rebuilds the quantized layers
    (without it, transformers would load that folder into float layers: random weights)."""
    layers = quantized_config(model).layers
    if not layers:
        raise ValueError("model: has no qtorch QuantLinear layers; quantize it first")
    config = QtorchConfig(layers={n: c.to_dict() for n, c in layers.items()},
                          modules_to_not_convert=modules_to_not_convert)
    model.config.quantization_config = config
    model.hf_quantizer = QtorchHfQuantizer(config, pre_quantized=True)
    model.is_quantized = True
    model.quantization_method = config.quant_method
    return config


def gptq_quantize(model, tokenizer, texts, config: GroupWeightOnlyConfig = GroupWeightOnlyConfig(
        bits=4, group_size=128, symmetric=False), *, modules_to_not_convert=("lm_head",), max_tokens: int = 512,
        progress: bool = True, **gptq_kwargs) -> QuantizeSummary:
    """GPTQ (qtorch.algorithms.quantize_gptq_: sequential, layer by layer, with a progress bar) on a transformers
    model, calibrated on `texts` tokenized one at a time by `tokenizer` (no padding tokens in the statistics);
    then attach_config. modules_to_not_convert: fnmatch patterns or name suffixes kept float (e.g. "lm_head")."""
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts: expected a non-empty list of str (calibration texts)")
    if not callable(tokenizer):
        raise TypeError(f"tokenizer: expected a transformers tokenizer, got {type(tokenizer).__name__}")
    device = next(model.parameters()).device
    batches = [{"input_ids": tokenizer(t, return_tensors="pt", truncation=True,
                                       max_length=max_tokens)["input_ids"].to(device)} for t in texts]
    skip = tuple(modules_to_not_convert or ())

    def keep(linear, name):
        return not any(fnmatch.fnmatchcase(name, p) or name == p or name.endswith("." + p) for p in skip)

    with torch.no_grad():
        summary = quantize_gptq_(model, batches, config, filter_fn=keep, progress=progress, **gptq_kwargs)
    if not any(isinstance(m, QuantLinear) for m in model.modules()):
        raise ValueError("model: GPTQ quantized no layer (every nn.Linear matched modules_to_not_convert?)")
    attach_config(model, list(skip) or None)
    return summary
