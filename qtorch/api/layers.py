"""Finding the nn.Linear layers of a model and deciding which ones to quantize (shared by quantize_ and plan_bits)."""
import fnmatch
from dataclasses import dataclass

import torch.nn as nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear


@dataclass
class LinearSite:
    """One place an nn.Linear sits in the module tree: parent._modules[attr] is module."""

    name: str  # qualified name, as in model.named_modules()
    parent: nn.Module
    attr: str
    module: nn.Linear

    def replace(self, new: nn.Module) -> None:
        setattr(self.parent, self.attr, new)


def linear_sites(model: nn.Module) -> list[LinearSite]:
    """Every occurrence of an nn.Linear (a module placed twice appears twice), in named_modules order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    sites = []
    if isinstance(model, nn.Linear):
        raise TypeError("model: got a bare nn.Linear; wrap it in a container or use QuantLinear.from_float")
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent._modules.items():
            if isinstance(child, nn.Linear):
                sites.append(LinearSite(f"{parent_name}.{attr}" if parent_name else attr, parent, attr, child))
    return sites


def tied_owners(model: nn.Module) -> dict[int, str]:
    """id(parameter) -> qualified name, for the parameters of modules that are not nn.Linear (e.g. an Embedding
    whose weight an output projection shares)."""
    owners = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            continue
        for p_name, p in mod.named_parameters(recurse=False):
            owners.setdefault(id(p), f"{mod_name}.{p_name}" if mod_name else p_name)
    return owners


def check_selection_args(filter_fn, skip, min_features) -> tuple[str, ...]:
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn: expected a callable (module, name) -> bool, got {type(filter_fn).__name__}")
    if isinstance(skip, str):
        skip = (skip,)
    skip = tuple(skip)
    if not all(isinstance(p, str) for p in skip):
        raise TypeError("skip: expected name patterns (str, fnmatch style, e.g. 'output' or 'layers.0.*')")
    if isinstance(min_features, bool) or not isinstance(min_features, int) or min_features < 0:
        raise ValueError(f"min_features: expected an int ≥ 0, got {min_features!r}")
    return skip


def skip_reason(site: LinearSite, owners: dict, filter_fn, skip: tuple, min_features: int) -> str | None:
    """Why this layer is left float, or None to quantize it."""
    m = site.module
    if isinstance(m, NonDynamicallyQuantizableLinear):
        return "read directly by its parent's functional forward (nn.MultiheadAttention)"
    for pattern in skip:
        if fnmatch.fnmatchcase(site.name, pattern):
            return f"matches skip pattern {pattern!r}"
    if min(m.in_features, m.out_features) < min_features:
        return f"smaller than min_features={min_features}"
    if filter_fn is not None and not filter_fn(m, site.name):
        return "filter_fn returned False"
    if id(m.weight) in owners:
        return f"weight tied to {owners[id(m.weight)]} (not an nn.Linear); quantizing would break the tie"
    return None
