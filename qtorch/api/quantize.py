"""quantize_ and dequantize_: swap nn.Linear layers for QuantLinear (and back) in place, anywhere in a model."""
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from qtorch.api.layers import check_selection_args, linear_sites, skip_reason, tied_owners
from qtorch.config import PerLayerConfig, QuantConfig, check_config
from qtorch.nn.base import QuantLinear


@dataclass
class QuantizeSummary:
    """What quantize_ did. Byte counts cover the converted layers' weights, each shared weight once: before = the
    float weights, after = everything QuantLinear stores for them (QuantLinear.weight_bytes); biases excluded."""

    converted: list[str] = field(default_factory=list)  # every converted occurrence, by qualified name
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    schemes: dict[str, QuantConfig] = field(default_factory=dict)  # name -> config used
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0

    @property
    def compression(self) -> float:
        return self.weight_bytes_before / self.weight_bytes_after if self.weight_bytes_after else 1.0

    def __str__(self) -> str:
        lines = [f"quantize_: {len(self.converted)} layers converted, {len(self.skipped)} skipped; weight bytes "
                 f"{self.weight_bytes_before:,} -> {self.weight_bytes_after:,} ({self.compression:.2f}x smaller)"]
        lines += [f"  {name}: {cfg!r}" for name, cfg in self.schemes.items()]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def _layer_config(config, name):
    return config.config_for(name) if isinstance(config, PerLayerConfig) else config


def quantize_(model: nn.Module, config, filter_fn=None, skip=(), min_features: int = 0) -> QuantizeSummary:
    """Replace, in place, every eligible nn.Linear of `model` by QuantLinear.from_float(linear, config).

    config: a scheme config (qtorch.config) for every layer, or a PerLayerConfig (e.g. from qtorch.plan_bits) giving
    one per layer name (None: keep float). Left float: layers matching a `skip` pattern (fnmatch on the qualified
    name, e.g. "output" or "layers.*.attention.wq"), with in_features or out_features < min_features, for which
    filter_fn(module, name) is False, whose weight is tied to a non-Linear module (e.g. an embedding), and the
    out_proj of nn.MultiheadAttention. Tied weights are respected: a module placed twice becomes one QuantLinear
    placed twice; Linear layers sharing one weight share one set of quantized buffers.
    Layers are quantized on their own device; a model on the meta device gets empty buffers of the right shapes
    (for load_state_dict(assign=True) / qtorch.load_quantized).
    """
    if not isinstance(config, PerLayerConfig):
        check_config("config", config)
    skip = check_selection_args(filter_fn, skip, min_features)
    owners = tied_owners(model)
    summary = QuantizeSummary()
    by_module: dict[int, QuantLinear] = {}  # id(nn.Linear) -> its QuantLinear
    by_weight: dict[int, QuantLinear] = {}  # id(weight Parameter) -> the first QuantLinear built from it
    for site in linear_sites(model):
        linear = site.module
        if id(linear) in by_module:  # the same module at a second place
            site.replace(by_module[id(linear)])
            summary.converted.append(site.name)
            summary.schemes[site.name] = by_module[id(linear)].config
            continue
        reason = skip_reason(site, owners, filter_fn, skip, min_features)
        layer_config = _layer_config(config, site.name)
        if reason is None and layer_config is None:
            reason = "no config for this layer in the PerLayerConfig"
        if reason is not None:
            summary.skipped.append((site.name, reason))
            continue
        tied = by_weight.get(id(linear.weight))
        if tied is not None and tied.config == layer_config:
            qlinear = tied.tied_copy(None if linear.bias is None else linear.bias.detach())
        else:
            try:
                qlinear = QuantLinear.from_float(linear, layer_config)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{site.name}: {exc}") from exc
            if tied is None:
                summary.weight_bytes_before += linear.weight.numel() * linear.weight.element_size()
                by_weight[id(linear.weight)] = qlinear
            summary.weight_bytes_after += qlinear.weight_bytes
        by_module[id(linear)] = qlinear
        site.replace(qlinear)
        summary.converted.append(site.name)
        summary.schemes[site.name] = layer_config
    return summary


def dequantize_(model: nn.Module, dtype: torch.dtype | None = None) -> list[str]:
    """Replace, in place, every QuantLinear by an nn.Linear holding its dequantized weight Ŵ (in `dtype`, default
    the dtype of the weight it was quantized from) and its bias. Returns the names of the replaced layers.
    Shared layers stay shared; layers that shared quantized buffers share one weight Parameter."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    by_module: dict[int, nn.Linear] = {}
    by_weight: dict[int, nn.Parameter] = {}
    replaced = []
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        for attr, child in list(parent._modules.items()):
            if not isinstance(child, QuantLinear):
                continue
            if id(child) not in by_module:
                weight_key = id(getattr(child, child.built_from[0]))
                if weight_key not in by_weight:
                    w = child.dequantize_weight(dtype or child.weight_dtype)  # (N, K)
                    by_weight[weight_key] = nn.Parameter(w)
                with torch.device("meta"):
                    linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                linear.weight = by_weight[weight_key]
                if child.bias is not None:
                    linear.bias = nn.Parameter(child.bias.to(linear.weight.dtype).clone())
                by_module[id(child)] = linear
            setattr(parent, attr, by_module[id(child)])
            replaced.append(f"{parent_name}.{attr}" if parent_name else attr)
    return replaced
