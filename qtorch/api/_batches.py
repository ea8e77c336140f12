"""How the API functions feed a batch to a model, and how they measure an output error."""
import math

import torch
from torch.utils._pytree import tree_leaves


def run_model(model, batch):
    """A tensor is model(batch); a tuple or list is model(*batch); a dict is model(**batch)."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    if isinstance(batch, dict):
        return model(**batch)
    raise TypeError(f"batch: expected a tensor, a tuple/list of positional arguments or a dict of keyword arguments, "
                    f"got {type(batch).__name__}")


def float_leaves(output) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (a tensor, or any nesting of tuples / lists / dicts)."""
    leaves = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not leaves:
        raise ValueError("output: the model returned no floating-point tensor to compare")
    return leaves


class ErrorSum:
    """Σ‖y‖² and Σ‖y − ŷ‖² over any number of (y, ŷ) pairs, in float64; the SQNR / relative error of the sums are
    those of qtorch.quant.sqnr_db / relative_error applied to all pairs concatenated."""

    def __init__(self):
        self.signal = 0.0
        self.noise = 0.0

    def add(self, ref: torch.Tensor, approx: torch.Tensor) -> None:
        if ref.shape != approx.shape:
            raise ValueError(f"output: shapes differ between the models: {tuple(ref.shape)} vs {tuple(approx.shape)}")
        ref, approx = ref.detach().double(), approx.detach().to(ref.device).double()
        self.signal += float(ref.pow(2).sum())
        self.noise += float((ref - approx).pow(2).sum())

    @property
    def noise_ratio(self) -> float:
        """‖y − ŷ‖² / ‖y‖²."""
        if self.noise == 0.0:
            return 0.0
        return self.noise / self.signal if self.signal else math.inf

    @property
    def sqnr_db(self) -> float:
        ratio = self.noise_ratio
        if ratio == 0.0:
            return math.inf
        return -10.0 * math.log10(ratio)

    @property
    def rel_error(self) -> float:
        return math.sqrt(self.noise_ratio)
