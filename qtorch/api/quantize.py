"""quantize_ and dequantize_: swap nn.Linear layers for QuantLinear (and back) in place, anywhere in a model."""
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from qtorch.api.layers import (canonical_name, check_model, check_selection_args, linear_sites, matching_pattern,
                               skip_reason, tied_owners, unwrap_compiled)
from qtorch.config import PerLayerConfig, QuantConfig, check_config
from qtorch.nn.base import QuantLinear, check_weight


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


ON_INCOMPATIBLE = ("raise", "skip")


def _layer_config(config, name):
    """The config a layer gets: `config` itself, or a PerLayerConfig's entry for the name (with or without
    torch.compile's `_orig_mod.` components) or its default."""
    if not isinstance(config, PerLayerConfig):
        return config
    for key in (name, canonical_name(name)):
        if key in config.layers:
            return config.layers[key]
    return config.default


def _incompatibility(linear: nn.Linear, config) -> str | None:
    """Why `config` cannot quantize this layer (the checks QuantLinear.from_float makes, without quantizing)."""
    try:
        check_weight("linear.weight", linear.weight.detach())
        QuantLinear._scheme_class(config).check_shape(config, linear.in_features, linear.out_features)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _incompatible_message(incompatible: list) -> str:
    """The error for layers `config` cannot hold: each layer and why, then the options that leave them float."""
    names = [name for name, _, _ in incompatible]
    smallest = max(min(linear.in_features, linear.out_features) for _, _, linear in incompatible) + 1
    head = "".join(f"{name}: {reason}\n" for name, reason, _ in incompatible)
    return (f"{head}quantize_: nothing was converted ({len(names)} layer(s) above cannot take this config). To leave "
            f"them float pass skip={names!r}, min_features={smallest} (keeps every layer with fewer in/out features "
            "float), a filter_fn, or on_incompatible='skip' (skip them with a warning)")


def _warn_already_quantized(model, config, skip) -> None:
    """Warn about QuantLinear layers this call would give another config: quantize_ leaves them as they are."""
    clashes = []
    for name, m in model.named_modules():
        wanted = _layer_config(config, name) if isinstance(m, QuantLinear) else None
        if wanted is not None and wanted != m.config and matching_pattern(name, skip) is None:
            clashes.append(f"{name} ({m.config!r})")
    if clashes:
        warnings.warn(f"quantize_: {len(clashes)} layer(s) already quantized with another config were left as they "
                      f"are: {', '.join(clashes)}; run qtorch.dequantize_(model) first (or start from the float "
                      "model) to quantize them with this config", stacklevel=3)


def quantize_(model: nn.Module, config, filter_fn=None, skip=(), min_features: int = 0, *,
              on_incompatible: str = "raise") -> QuantizeSummary:
    """Replace, in place, every eligible nn.Linear of `model` by QuantLinear.from_float(linear, config).

    config: a scheme config (qtorch.config) for every layer, or a PerLayerConfig (e.g. from qtorch.plan_bits) giving
    one per layer name (None: keep float). Left float: layers matching a `skip` pattern (fnmatch on the qualified
    name, e.g. "output" or "layers.*.attention.wq"), with in_features or out_features < min_features, for which
    filter_fn(module, name) is False, whose weight is tied to a non-Linear module (e.g. an embedding), and the
    out_proj of nn.MultiheadAttention. Tied weights are respected: a module placed twice becomes one QuantLinear
    placed twice; Linear layers sharing one weight share one set of quantized buffers.
    Layers are quantized on their own device; a model on the meta device gets empty buffers of the right shapes
    (for load_state_dict(assign=True) / qtorch.load_quantized).

    Atomic: every selected layer is checked first (finite float weight, a shape the scheme can hold, e.g. in_features
    divisible by the group size) and quantized before any is swapped in, so an error leaves the model unchanged.
    on_incompatible: "raise" (default) — a ValueError naming each layer that fails and why; "skip" — leave those
    layers float, listed in one warning and in the summary's `skipped`.
    Warnings (UserWarning): nothing was converted; a layer is already a QuantLinear of another config (it is left as
    it is: dequantize_ first to re-quantize). A torch.compile'd model is quantized through its wrapper (`_orig_mod`);
    the compiled model recompiles on its next call.
    """
    check_model(model)
    model = unwrap_compiled(model)
    if not isinstance(config, PerLayerConfig):
        check_config("config", config)
    if on_incompatible not in ON_INCOMPATIBLE:
        raise ValueError(f"on_incompatible: expected one of {ON_INCOMPATIBLE}, got {on_incompatible!r}")
    skip = check_selection_args(filter_fn, skip, min_features)
    _warn_already_quantized(model, config, skip)
    owners = tied_owners(model)
    summary = QuantizeSummary()
    sites = linear_sites(model)
    # 1. choose and check: id(nn.Linear) -> config for every layer to convert, before anything is quantized
    chosen: dict[int, QuantConfig] = {}
    selected, incompatible = [], []
    for site in sites:
        linear = site.module
        if id(linear) in chosen:  # the same module at a second place
            selected.append(site)
            continue
        reason = skip_reason(site, owners, filter_fn, skip, min_features)
        layer_config = _layer_config(config, site.name)
        if reason is None and layer_config is None:
            reason = "no config for this layer in the PerLayerConfig"
        if reason is not None:
            summary.skipped.append((site.name, reason))
            continue
        problem = _incompatibility(linear, layer_config)
        if problem is not None:
            incompatible.append((site.name, problem, linear))
            continue
        chosen[id(linear)] = layer_config
        selected.append(site)
    if incompatible and on_incompatible == "raise":
        raise ValueError(_incompatible_message(incompatible))
    if incompatible:
        warnings.warn("quantize_: left float, this config cannot hold them: "
                      + "; ".join(f"{name} ({problem})" for name, problem, _ in incompatible), stacklevel=2)
        summary.skipped += [(name, f"incompatible: {problem}") for name, problem, _ in incompatible]
    # 2. quantize every chosen layer, still without touching the model
    built: dict[int, QuantLinear] = {}  # id(nn.Linear) -> its QuantLinear
    by_weight: dict[int, QuantLinear] = {}  # id(weight Parameter) -> the first QuantLinear built from it
    for site in selected:
        linear, layer_config = site.module, chosen[id(site.module)]
        if id(linear) not in built:
            tied = by_weight.get(id(linear.weight))
            if tied is not None and tied.config == layer_config:
                qlinear = tied.tied_copy(None if linear.bias is None else linear.bias.detach())
            else:
                try:
                    qlinear = QuantLinear.from_float(linear, layer_config)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"{site.name}: {exc}; nothing was converted") from exc
                if tied is None:
                    summary.weight_bytes_before += linear.weight.numel() * linear.weight.element_size()
                    by_weight[id(linear.weight)] = qlinear
                summary.weight_bytes_after += qlinear.weight_bytes
            built[id(linear)] = qlinear
        summary.converted.append(site.name)
        summary.schemes[site.name] = layer_config
    # 3. swap them in
    for site in selected:
        site.replace(built[id(site.module)])
    if not summary.converted:
        n_quantized = sum(isinstance(m, QuantLinear) for m in model.modules())
        why = (f"all {len(sites)} nn.Linear layers were skipped ({summary.skipped[0][0]}: {summary.skipped[0][1]}"
               f"{', ...' if len(summary.skipped) > 1 else ''})" if sites else
               f"the model has no nn.Linear layer ({n_quantized} already quantized)")
        warnings.warn(f"quantize_: no layer converted: {why}", stacklevel=2)
    return summary


def dequantize_(model: nn.Module, dtype: torch.dtype | None = None) -> list[str]:
    """Replace, in place, every QuantLinear by an nn.Linear holding its dequantized weight Ŵ (in `dtype`, default
    the dtype of the weight it was quantized from) and its bias. Returns the names of the replaced layers.
    Shared layers stay shared; layers that shared quantized buffers share one weight Parameter."""
    check_model(model)
    model = unwrap_compiled(model)
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
