"""DequantizedWeight: the `.weight` of a QuantLinear, a float (out_features, in_features) tensor computed on use.

Its metadata are the float layer's (shape (N, K), dtype = the layer's weight_dtype, which follows `.to(dtype)` /
`.half()` as nn.Linear's weight would, device = where the buffers are), so `layer.weight.shape / .dtype / .device`
cost nothing. Its values Ŵ = layer.dequantize_weight(dtype) are computed only when an op reads them (e.g.
`F.linear(x, layer.weight, layer.bias)`, or nn.MultiheadAttention's `out_proj`, which never calls its module): that
op then runs in float on Ŵ, not through the quantized kernel, and qtorch warns once. It is not a Parameter (the
quantized weight is frozen and never enters state_dict), and it holds no data of its own.

Being a tensor subclass, it makes PyTorch's fused transformer fast paths (nn.MultiheadAttention,
nn.TransformerEncoderLayer) take their ordinary path: they bail out when `torch.overrides.has_torch_function` is true
for a weight. Under torch.compile, `QuantLinear.weight` is the plain dequantized tensor instead (the compiler drops
it when only its metadata are read).
"""
import torch
from torch.utils._pytree import tree_map

from qtorch.ops._registry import warn_once


class DequantizedWeight(torch.Tensor):
    """(N, K) float view of a QuantLinear's weight, dequantized when an op reads its values."""

    @staticmethod
    def __new__(cls, layer):
        shape = (layer.out_features, layer.in_features)
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=layer.weight_dtype, device=layer.qscheme.device,
                                                   requires_grad=False)

    def __init__(self, layer):
        self.layer = layer

    def materialize(self) -> torch.Tensor:
        """Ŵ (N, K) in this tensor's dtype."""
        return self.layer.dequantize_weight(self.dtype)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """Defined (not disabled) so that has_torch_function(weight) is true and fused fast paths step aside."""
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        warn_once("dequantized_weight", f"qtorch: {func} read the .weight of a quantized layer; it runs on the "
                                        "dequantized float weight (a float op, not the quantized kernel); call the "
                                        "layer itself to use its quantized kernel")

        def unwrap(t):
            return t.materialize() if isinstance(t, DequantizedWeight) else t

        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))

    def __repr__(self, *, tensor_contents=None):
        return (f"DequantizedWeight(shape={tuple(self.shape)}, dtype={self.dtype}, device={self.device}, "
                f"of {type(self.layer).__name__})")
