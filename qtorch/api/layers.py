"""Finding the nn.Linear layers of a model and deciding which ones to quantize (shared by quantize_ and plan_bits)."""
import fnmatch
import sys
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


COMPILED_PREFIX = "_orig_mod"  # the attribute torch.compile's OptimizedModule keeps the model under


def check_model(model) -> None:
    if not isinstance(model, nn.Module):
        hint = " (a tensor: pass the model whose nn.Linear layers hold the weights)" \
            if type(model).__name__ in ("Tensor", "Parameter") else ""
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}{hint}")


def unwrap_compiled(model: nn.Module) -> nn.Module:
    """The module a torch.compile wrapper (OptimizedModule) runs, else `model` itself. Changing the inner module
    in place makes the wrapper recompile on its next call (its guards see the new submodules)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # imported by torch.compile; absent: nothing compiled
    while eval_frame is not None and isinstance(model, eval_frame.OptimizedModule):
        model = getattr(model, COMPILED_PREFIX)
    return model


def canonical_name(name: str) -> str:
    """A module or tensor name with torch.compile's `_orig_mod.` components removed: the same name whether the model
    (or a submodule of it) was compiled or not."""
    return ".".join(part for part in name.split(".") if part != COMPILED_PREFIX)


def linear_sites(model: nn.Module) -> list[LinearSite]:
    """Every occurrence of an nn.Linear (a module placed twice appears twice), in named_modules order."""
    check_model(model)
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


def matching_pattern(name: str, skip: tuple) -> str | None:
    """The first `skip` pattern (fnmatch) that matches the qualified name, or None."""
    return next((pattern for pattern in skip if fnmatch.fnmatchcase(name, pattern)), None)


def skip_reason(site: LinearSite, owners: dict, filter_fn, skip: tuple, min_features: int) -> str | None:
    """Why this layer is left float, or None to quantize it."""
    m = site.module
    if isinstance(m, NonDynamicallyQuantizableLinear):
        return "read directly by its parent's functional forward (nn.MultiheadAttention)"
    pattern = matching_pattern(site.name, skip)
    if pattern is not None:
        return f"matches skip pattern {pattern!r}"
    if min(m.in_features, m.out_features) < min_features:
        return f"smaller than min_features={min_features}"
    if filter_fn is not None and not filter_fn(m, site.name):
        return "filter_fn returned False"
    if id(m.weight) in owners:
        return f"weight tied to {owners[id(m.weight)]} (not an nn.Linear); quantizing would break the tie"
    return None
