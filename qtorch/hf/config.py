"""QtorchConfig: the quantization_config that `from_pretrained` takes and `save_pretrained` writes into config.json.

    QtorchConfig(scheme=GroupWeightOnlyConfig(bits=4, group_size=128), modules_to_not_convert=["lm_head"])

scheme: a qtorch scheme config (qtorch.config), its dict form (`config.to_dict()`), or a PerLayerConfig (e.g. from
qtorch.plan_bits) giving one per layer name. After loading, `layers` records the scheme of every layer actually
quantized; a saved checkpoint is rebuilt from it, so `from_pretrained(dir)` needs no quantization_config argument.
"""
from collections.abc import Mapping

from transformers.utils.quantization_config import QuantizationConfigMixin

from qtorch.config import PerLayerConfig, QuantConfig, W8A8StaticConfig, check_config, config_from_dict

QUANT_METHOD = "qtorch"


def _scheme(scheme):
    """The scheme argument as a QuantConfig or PerLayerConfig (checked)."""
    if isinstance(scheme, (QuantConfig, PerLayerConfig)):
        if isinstance(scheme, QuantConfig):
            check_config("scheme", scheme)
        return scheme
    if isinstance(scheme, Mapping):
        return PerLayerConfig.from_dict(scheme) if "layers" in scheme else config_from_dict(scheme)
    raise TypeError(f"scheme: expected a qtorch scheme config (e.g. GroupWeightOnlyConfig(bits=4)), its to_dict() "
                    f"form or a PerLayerConfig, got {type(scheme).__name__}")


class QtorchConfig(QuantizationConfigMixin):
    """Which qtorch scheme each nn.Linear of a transformers model gets (see the module docstring)."""

    def __init__(self, scheme=None, modules_to_not_convert=None, layers=None, **kwargs):
        self.quant_method = QUANT_METHOD
        if scheme is None and layers is None:
            raise ValueError("scheme: required, e.g. QtorchConfig(scheme=qtorch.GroupWeightOnlyConfig(bits=4))")
        self.scheme = None if scheme is None else _scheme(scheme)
        if modules_to_not_convert is not None and (isinstance(modules_to_not_convert, str) or not all(
                isinstance(m, str) for m in modules_to_not_convert)):
            raise TypeError("modules_to_not_convert: expected a list of module names or patterns (str)")
        self.modules_to_not_convert = None if modules_to_not_convert is None else list(modules_to_not_convert)
        self.layers = None if layers is None else _scheme({"layers": layers})  # filled after quantizing
        if kwargs:
            raise TypeError(f"QtorchConfig: unexpected arguments {sorted(kwargs)}")

    def scheme_for_loading(self) -> QuantConfig | PerLayerConfig:
        """The per-layer record of a quantized checkpoint when there is one, else the requested scheme."""
        return self.layers if self.layers is not None else self.scheme

    def needs_calibration(self) -> bool:
        scheme = self.scheme
        configs = scheme.layers.values() if isinstance(scheme, PerLayerConfig) else [scheme]
        return any(isinstance(c, W8A8StaticConfig) for c in configs)

    def to_dict(self) -> dict:
        return {"quant_method": self.quant_method,
                "scheme": None if self.scheme is None else self.scheme.to_dict(),
                "modules_to_not_convert": self.modules_to_not_convert,
                "layers": None if self.layers is None else self.layers.to_dict()["layers"]}

    def __iter__(self):
        yield from self.to_dict().items()

    def to_diff_dict(self) -> dict:
        return self.to_dict()

    @classmethod
    def from_dict(cls, config_dict, return_unused_kwargs=False, **kwargs):
        d = {k: v for k, v in config_dict.items() if k != "quant_method"}
        config = cls(**d)
        return (config, kwargs) if return_unused_kwargs else config
