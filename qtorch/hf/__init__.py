"""Hugging Face transformers integration (the `hf` extra): `import qtorch.hf` registers QtorchConfig and its
quantizer with transformers, so that

    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=QtorchConfig(scheme=...))
    model.save_pretrained(out)                      # quantized safetensors + the config in config.json
    model = AutoModelForCausalLM.from_pretrained(out)   # restored bit-exactly (qtorch.hf imported)
"""
from transformers.quantizers.auto import (AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING,
                                          register_quantization_config, register_quantizer)

from qtorch.hf.calibrate import attach_config, gptq_quantize
from qtorch.hf.config import QUANT_METHOD, QtorchConfig
from qtorch.hf.quantizer import QtorchHfQuantizer

if QUANT_METHOD not in AUTO_QUANTIZATION_CONFIG_MAPPING:
    register_quantization_config(QUANT_METHOD)(QtorchConfig)
if QUANT_METHOD not in AUTO_QUANTIZER_MAPPING:
    register_quantizer(QUANT_METHOD)(QtorchHfQuantizer)

__all__ = ["QtorchConfig", "QtorchHfQuantizer", "attach_config", "gptq_quantize"]
