"""QtorchHfQuantizer: qtorch's QuantLinear layers inside transformers' `from_pretrained` / `save_pretrained`.

Quantize on load (a float checkpoint and QtorchConfig): the model skeleton stays on the meta device; as each
nn.Linear weight is read from the checkpoint (one tensor at a time, onto its device_map device), `QuantizeOnLoad`
swaps that layer for `QuantLinear.from_float(linear, scheme)` and the float weight is freed, so the float model is
never whole in memory. Load a quantized checkpoint (its config.json holds the QtorchConfig with `layers`, the scheme
of every quantized layer): the skeleton's layers are replaced by empty QuantLinear layers (qtorch.quantize_ on the
meta device) whose buffers are then filled from the safetensors file; every layer's stored scheme record (`qscheme`)
is compared with the config and every buffer must be present, else a ValueError names the layer.
"""
import torch
import torch.nn as nn
from transformers.core_model_loading import ConversionOps
from transformers.quantizers.base import HfQuantizer
from transformers.quantizers.quantizers_utils import should_convert_module

from qtorch.api.quantize import quantize_
from qtorch.api.serialization import quantized_config
from qtorch.config import PerLayerConfig
from qtorch.hf.config import QUANT_METHOD
from qtorch.nn.base import QuantLinear
from qtorch.nn.scheme_state import decode_scheme


def _split(name: str) -> tuple[str, str]:
    module, _, attr = name.rpartition(".")
    return module, attr


class QuantizeOnLoad(ConversionOps):
    """Receives one float nn.Linear weight as transformers reads it; replaces the layer by its QuantLinear."""

    def __init__(self, hf_quantizer: "QtorchHfQuantizer"):
        self.hf_quantizer = hf_quantizer

    def convert(self, input_dict, full_layer_name=None, model=None, missing_keys=None, **kwargs):
        (weight,) = [v[0] if isinstance(v, list) else v for v in input_dict.values()]  # (N, K) float
        module_name, _ = _split(full_layer_name)
        linear = model.get_submodule(module_name)
        linear.weight = nn.Parameter(weight, requires_grad=False)
        # a bias not read yet stays a meta buffer of the QuantLinear, filled when transformers reads it
        config = self.hf_quantizer.scheme_for(module_name)
        try:
            qlinear = QuantLinear.from_float(linear, config)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{module_name}: {exc}") from exc
        model.set_submodule(module_name, qlinear)
        if missing_keys is not None:
            missing_keys.discard(full_layer_name)
        return {}


class QtorchHfQuantizer(HfQuantizer):
    """The transformers quantizer of QtorchConfig (registered under quant_method "qtorch" by `import qtorch.hf`)."""

    requires_calibration = False

    def __init__(self, quantization_config, **kwargs):
        super().__init__(quantization_config, **kwargs)
        self.plan = None  # PerLayerConfig: module name -> scheme, decided before the weights load
        self.weight_element_sizes = {}  # module name -> bytes per weight element once quantized
        self.model = None

    def validate_environment(self, *args, **kwargs):
        if not self.pre_quantized:
            if self.quantization_config.scheme is None:
                raise ValueError("quantization_config: a QtorchConfig without scheme can only load a checkpoint "
                                 "saved quantized")
            if self.quantization_config.needs_calibration():
                raise ValueError("scheme: W8A8StaticConfig needs calibration data; quantize on load with a dynamic "
                                 "or weight-only scheme, or quantize_ + calibrate the loaded model and save it")
        elif self.quantization_config.layers is None:
            raise ValueError("config.json: the qtorch quantization_config has no 'layers' record of the quantized "
                             "layers; save the model with save_pretrained after quantizing it")

    def scheme_for(self, module_name: str):
        return self.plan.config_for(module_name)

    def _plan(self, model) -> PerLayerConfig:
        """The scheme of every nn.Linear to quantize: qtorch.quantize_'s selection rules (tied weights, ...) run on a
        meta copy of the skeleton, minus modules_to_not_convert and transformers' fp32-kept modules."""
        config = self.quantization_config
        skip = list(config.modules_to_not_convert or []) + list(getattr(model, "_keep_in_fp32_modules", None) or [])
        names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)
                 and should_convert_module(name, skip or None)]
        scheme = config.scheme
        per_name = {n: scheme.config_for(n) if isinstance(scheme, PerLayerConfig) else scheme for n in names}
        return PerLayerConfig({n: c for n, c in per_name.items() if c is not None})

    def _process_model_before_weight_loading(self, model, **kwargs):
        self.model = model
        if self.pre_quantized:
            self.plan = self.quantization_config.layers
            missing = [n for n in self.plan.layers if not isinstance(_get(model, n), nn.Linear)]
            if missing:
                raise ValueError(f"config.json: the qtorch 'layers' record names {missing[:3]}, which are not "
                                 f"nn.Linear layers of {type(model).__name__}; the checkpoint is of another model")
            with torch.device("meta"):
                quantize_(model, self.plan)  # empty QuantLinear layers of the right shapes, filled by the loader
        else:
            plan = self._plan(model)
            summary_skips = self._tied_or_unquantizable(model, plan)
            self.plan = PerLayerConfig({n: c for n, c in plan.layers.items() if n not in summary_skips})
            for name, config in self.plan.layers.items():  # shape checks now, on the meta layers, before any read
                linear = model.get_submodule(name)
                try:
                    empty = QuantLinear.from_float(linear, config)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"{name}: {exc}") from exc
                self.weight_element_sizes[name] = empty.weight_bytes / linear.weight.numel()
        return model

    @staticmethod
    def _tied_or_unquantizable(model, plan) -> set:
        """Layers quantize_ would leave float (e.g. lm_head tied to the embedding), found on the meta skeleton."""
        from qtorch.api.layers import linear_sites, skip_reason, tied_owners

        owners = tied_owners(model)
        tied = {_split(target)[0] for target in getattr(model, "all_tied_weights_keys", None) or {}}  # tied later
        return tied | {s.name for s in linear_sites(model) if s.name in plan.layers
                       and skip_reason(s, owners, None, (), 0) is not None}

    def param_needs_quantization(self, model, param_name: str, **kwargs) -> bool:
        if self.pre_quantized or self.plan is None:
            return False
        module_name, attr = _split(param_name)
        return attr == "weight" and module_name in self.plan.layers and isinstance(_get(model, module_name),
                                                                                   nn.Linear)

    def param_element_size(self, model, param_name: str, param) -> float:
        """Bytes per element once loaded: transformers sizes its GPU allocator warm-up with it (the float size would
        reserve the whole float model)."""
        if self.param_needs_quantization(model, param_name):
            return self.weight_element_sizes[_split(param_name)[0]]
        return param.element_size()

    def get_quantize_ops(self):
        return QuantizeOnLoad(self)

    def get_new_dtype(self, converter, param, dtype):
        """Checkpoint tensors of a QuantLinear keep their stored dtype (fp32 scales, integer weights), except the
        bias, which follows the model's dtype."""
        target = getattr(converter, "target_patterns", [""])[0]
        module_name, attr = _split(target)
        if module_name in (self.plan.layers if self.plan is not None else {}) and attr != "bias":
            return None
        return super().get_new_dtype(converter, param, dtype)

    def _process_model_after_weight_loading(self, model, **kwargs):
        for name, module in model.named_modules():
            if not isinstance(module, QuantLinear):
                continue
            # transformers flags every tensor it loaded; in a quantized checkpoint every buffer must have been loaded
            empty = [b for b, t in module._buffers.items() if t is not None and (
                t.device.type == "meta" or self.pre_quantized and not getattr(t, "_is_hf_initialized", False))]
            if empty:
                raise ValueError(f"{name}: the checkpoint holds no {', '.join(empty)} for this quantized layer "
                                 "(a truncated or corrupt file, or one saved from another model)")
            stored = decode_scheme(module.qscheme)
            if stored != module.config:
                raise ValueError(f"{name}: the checkpoint was quantized with {stored!r}, config.json says "
                                 f"{module.config!r}; the file and its config.json do not belong together")
            module.after_load()
        if not self.pre_quantized:
            failed = [n for n in self.plan.layers if not isinstance(model.get_submodule(n), QuantLinear)]
            if failed:  # transformers reports a failed conversion instead of raising
                raise ValueError(f"{failed[0]}: not quantized on load ({len(failed)} layers failed); see the "
                                 "load report above")
            self.quantization_config.layers = quantized_config(model)
        self.model = None
        return model

    def is_serializable(self, *args, **kwargs):
        return True

    @property
    def is_trainable(self) -> bool:
        return False

    @property
    def is_compileable(self) -> bool:
        return True


def _get(model, name):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


__all__ = ["QtorchHfQuantizer", "QuantizeOnLoad", "QUANT_METHOD"]
