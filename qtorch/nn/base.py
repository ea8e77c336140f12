"""QuantLinear: the base of every quantized linear layer, whatever its scheme.

A QuantLinear holds only buffers (never parameters): the quantized weight tensors of its scheme, the float bias, and
`qscheme` (the config as JSON bytes, so a checkpoint of another scheme fails to load with a clear error). Every
weight-side constant (scales, zero points, column sums, packed weights, codebooks) is computed once when the layer
is built, never per forward. `forward` accepts (..., in_features) in bf16 / fp16 / fp32, flattens the leading dims
for the 2-D qtorch:: ops, and returns (..., out_features) in the input's dtype.

Build with `QuantLinear.from_float(linear, config)` (quantizes the float weight) or
`QuantLinear.from_quantized(config, ...)` (takes integer weights made elsewhere, e.g. by GPTQ in qtorch.algorithms).
Moving a layer (`.to(device)`, `.cuda()`) moves every buffer; casting (`.to(torch.bfloat16)`, `.half()`) casts only
the bias (and sets weight_dtype): scales and codebooks stay float32, integers stay integers.

`layer.weight` is the float layer's weight, (N, K) in weight_dtype on the layer's device, dequantized only when an op
reads its values (qtorch.nn.dequantized_weight); it is not a parameter and not in state_dict.
"""
from typing import ClassVar

import torch
import torch.nn as nn

from qtorch.config import QuantConfig, check_config
from qtorch.nn.dequantized_weight import DequantizedWeight
from qtorch.nn.scheme_state import decode_scheme, encode_scheme

ACT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)  # accepted for unpacked integer weights


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def check_weight(name: str, weight: torch.Tensor) -> None:
    """A float weight we can quantize: 2-D, bf16/fp16/fp32, finite (values checked only when readable)."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(weight).__name__}")
    if weight.dtype not in ACT_DTYPES:
        raise TypeError(f"{name}: expected a bfloat16, float16 or float32 weight, got {_dtype_name(weight.dtype)}")
    if weight.dim() != 2 or 0 in weight.shape:
        raise ValueError(f"{name}: expected a non-empty 2-D (out_features, in_features) weight, got "
                         f"{tuple(weight.shape)}")
    if weight.device.type != "meta" and not bool(torch.isfinite(weight).all()):
        n_nan, n_inf = int(torch.isnan(weight).sum()), int(torch.isinf(weight).sum())
        raise ValueError(f"{name}: contains {n_nan} NaN and {n_inf} Inf values; cannot quantize a non-finite weight")


def check_quantized(name: str, t, shape: tuple, dtypes: tuple) -> None:
    """A tensor handed to from_quantized: right type, dtype and shape."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(_dtype_name(d) for d in dtypes)}, "
                        f"got {_dtype_name(t.dtype)}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


def has_values(t: torch.Tensor) -> bool:
    return t.device.type != "meta"


def _keep_fused_paths_away(module, args):
    """A no-op forward pre-hook. PyTorch's fused nn.TransformerEncoderLayer path (torch._transformer_encoder_layer_fwd)
    steps aside for modules with hooks; without one it would, under torch.compile where `.weight` is a plain
    dequantized tensor, run linear1 / linear2 as float matmuls instead of calling the quantized layers."""


class QuantLinear(nn.Module):
    """y = x · Ŵᵀ + b with Ŵ the dequantized weight of the layer's scheme (see the subclasses)."""

    configs: ClassVar[tuple] = ()  # the config classes a subclass serves
    _by_config: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for config_cls in cls.configs:
            QuantLinear._by_config[config_cls] = cls

    def __init__(self, config: QuantConfig, in_features: int, out_features: int, buffers: dict,
                 bias: torch.Tensor | None, weight_dtype: torch.dtype):
        super().__init__()
        self.config = config
        self.in_features = in_features  # K
        self.out_features = out_features  # N
        self.weight_dtype = weight_dtype  # dtype of the float weight, for dequantize_
        self.built_from = tuple(buffers)  # names of the scheme's buffers (shared by tied_copy)
        for name, t in buffers.items():
            self.register_buffer(name, t)
        if bias is not None:
            check_quantized("bias", bias, (out_features,), ACT_DTYPES)
            bias = bias.detach().clone()
        self.register_buffer("bias", bias)  # (N,) float or None
        device = next(iter(buffers.values())).device
        self.register_buffer("qscheme", encode_scheme(config).to(device))
        self.register_forward_pre_hook(_keep_fused_paths_away)


    # --- construction -------------------------------------------------------------------------------------------
    @staticmethod
    def _scheme_class(config) -> type:
        check_config("config", config)
        return QuantLinear._by_config[type(config)]

    @classmethod
    def from_float(cls, linear: nn.Linear, config: QuantConfig) -> "QuantLinear":
        """Quantize an nn.Linear's weight with `config` (bias kept in float)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        scheme = cls._scheme_class(config)
        weight = linear.weight.detach()
        check_weight("linear.weight", weight)
        scheme.check_shape(config, weight.shape[1], weight.shape[0])
        tensors = scheme.quantize_weight(weight, config)
        return scheme.build(config, linear.bias, weight.dtype, **tensors)

    @classmethod
    def from_quantized(cls, config: QuantConfig, *, bias: torch.Tensor | None = None,
                       weight_dtype: torch.dtype = torch.float32, **tensors) -> "QuantLinear":
        """Build a layer from integer weights computed elsewhere; the scheme's `build` lists the tensors it takes:
        W8A8: q (N, K) int8, scale (N,) fp32; weight-only: q (N, K) int8 (unpacked), scale (N, K/g) fp32,
        zero_point (N, K/g) int (optional when symmetric); codebook: indices (N, K) int, codebook (N, K/g, 2^bits)
        or (N, 2^bits) fp32. Packing and every other weight-side constant are computed here."""
        return cls._scheme_class(config).build(config, bias, weight_dtype, **tensors)

    @classmethod
    def check_shape(cls, config, in_features: int, out_features: int) -> None:
        """Raise if the scheme cannot hold an (out_features, in_features) weight."""

    @classmethod
    def quantize_weight(cls, weight: torch.Tensor, config) -> dict:
        raise NotImplementedError

    @classmethod
    def build(cls, config, bias, weight_dtype, **tensors) -> "QuantLinear":
        raise NotImplementedError

    def tied_copy(self, bias: torch.Tensor | None) -> "QuantLinear":
        """A layer sharing this one's weight buffers (for nn.Linear layers with tied weights) with its own bias."""
        buffers = {name: getattr(self, name) for name in self.built_from}
        return type(self)(self.config, self.in_features, self.out_features, buffers, bias, self.weight_dtype)

    # --- forward --------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) bf16/fp16/fp32 -> (..., out_features) in x's dtype."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input: expected a tensor, got {type(x).__name__}")
        if x.dtype not in ACT_DTYPES:
            raise TypeError(f"input: expected a bfloat16, float16 or float32 tensor, got {_dtype_name(x.dtype)}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"input: expected last dimension in_features={self.in_features}, got shape "
                             f"{tuple(x.shape)}")
        if x.dim() == 2:  # (M, K): no reshapes (each a dispatched op)
            return self.linear_2d(x)
        y = self.linear_2d(x.reshape(-1, self.in_features))  # (M, N)
        return y.reshape(*x.shape[:-1], self.out_features)

    def linear_2d(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, K) -> y (M, N) in x's dtype, through the scheme's qtorch:: ops."""
        raise NotImplementedError

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Ŵ (N, K): the weight this layer computes with."""
        raise NotImplementedError

    @property
    def weight(self) -> torch.Tensor:
        """Ŵ (N, K) in weight_dtype: a DequantizedWeight (values computed when read, warned once) in eager, the
        dequantized tensor under torch.compile (dropped by the compiler when unused)."""
        if torch.compiler.is_compiling():
            return self.dequantize_weight(self.weight_dtype)
        return DequantizedWeight(self)

    # --- accounting -----------------------------------------------------------------------------------------------
    @property
    def weight_bytes(self) -> int:
        """Bytes of everything stored for the weight (payload, scales, zero points, column sums, codebooks, and the
        calibrated activation constants of static layers); the float bias and the scheme and layout records are not
        counted."""
        return sum(t.numel() * t.element_size() for name, t in self._buffers.items()
                   if t is not None and name not in ("bias", "qscheme", "w_layout"))

    @property
    def bits_per_weight(self) -> float:
        """8 · weight_bytes / (in_features · out_features)."""
        return 8.0 * self.weight_bytes / (self.in_features * self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"scheme={self.config!r}, bits_per_weight={self.bits_per_weight:.3f}")

    # --- dtype / device moves and checkpoints ---------------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        """Move every buffer with fn, but let fn change the dtype of the bias only (no precision lost on scales)."""
        for name, t in self._buffers.items():
            if t is None:
                continue
            moved = fn(t)
            if moved.dtype != t.dtype and name != "bias":
                moved = t.to(device=moved.device)
            self._buffers[name] = moved
        self.weight_dtype = fn(torch.empty(0, dtype=self.weight_dtype, device=self.qscheme.device)).dtype
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        layer = prefix[:-1] or "layer"
        if prefix + "qscheme" not in state_dict and prefix + "weight" in state_dict:
            raise ValueError(f"{layer}: the checkpoint holds a float nn.Linear weight, this layer is quantized "
                             f"({self.config!r}); load float weights before quantizing")
        if prefix + "qscheme" in state_dict:
            theirs = decode_scheme(state_dict[prefix + "qscheme"])
            if theirs != self.config:
                raise ValueError(f"{layer}: the checkpoint was quantized with {theirs!r}, this layer with "
                                 f"{self.config!r}; quantize the model with the checkpoint's config first "
                                 "(qtorch.load_config(path))")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self.after_load()

    def after_load(self) -> None:
        """Refresh Python-side state that mirrors buffer values (static layers)."""
