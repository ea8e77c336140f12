"""Weight-only quantization: int8 per channel, or int4 / int8 per group along K; activations stay float.

  ŵ[n, k] = S[n, k // g] (q[n, k] − Z[n, k // g]),   y = x ŵᵀ + b   (qtorch::weight_only_linear, output in x's dtype)
Per channel is the group size g = K. q is signed (int4 in [−8, 7], int8); S fp32, Z int8 (zeros when symmetric).
Scales from the group's range (qtorch::group_quantize), or, with GroupWeightOnlyConfig(clip_search=True), from a
per-group clipping search (qtorch.nn.clip_search).
q is stored in the layout of the kernel that serves it (qtorch.quant.layout), chosen once at conversion from the
shape alone: LAYOUT_TILED (the mixed-input GEMM of qtorch._C) when K and g allow it, LAYOUT_ROWMAJOR otherwise
(int4 two per byte along K, low nibble first). The buffer `w_layout` records it; a checkpoint in the other layout
(or one written before layouts were recorded: row-major) is converted on load, bit-exactly.
"""
import torch

import qtorch.ops as qops
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig
from qtorch.nn.base import INT_DTYPES, QuantLinear, check_quantized, has_values
from qtorch.nn.clip_search import clip_search_qparams
from qtorch.ops.group import dequantize_dtype, to_rowmajor
from qtorch.quant._validate import check_finite
from qtorch.quant.affine import quantize
from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED, LAYOUTS, WeightLayout, pack_tiled
from qtorch.quant.packing import pack, unpack
from qtorch.quant.ranges import qrange


def weight_layout(config, in_features: int) -> WeightLayout:
    """The WeightLayout of a weight-only config for K = in_features (int8 per channel: g = K, symmetric)."""
    if isinstance(config, Int8WeightOnlyConfig):
        return WeightLayout.for_shape(8, in_features, in_features, True)
    return WeightLayout.for_shape(config.bits, in_features, config.group_size, config.symmetric)


def pack_layout(q: torch.Tensor, bits: int, layout_id: int) -> torch.Tensor:
    """q (N, K) signed integers -> the packed weight in `layout_id`."""
    return pack_tiled(q, bits) if layout_id == LAYOUT_TILED else pack(q, bits)


class WeightOnlyLinear(QuantLinear):
    """int8 per channel or int4 / int8 per group; dequantized inside the GEMM on CUDA (Triton)."""

    configs = (Int8WeightOnlyConfig, GroupWeightOnlyConfig)

    def __init__(self, config, in_features, out_features, buffers, bias, weight_dtype):
        super().__init__(config, in_features, out_features, buffers, bias, weight_dtype)
        self.weight_layout = weight_layout(config, in_features)  # bits, g, symmetric, packed layout: fixed here

    @property
    def bits(self) -> int:
        return self.weight_layout.bits

    @property
    def group_size(self) -> int:
        return self.weight_layout.group_size

    @property
    def layout(self) -> int:
        return self.weight_layout.layout

    @classmethod
    def check_shape(cls, config, in_features, out_features):
        group_size = weight_layout(config, in_features).group_size
        if in_features % group_size:
            raise ValueError(f"in_features: {in_features} is not divisible by group_size={group_size}")

    @classmethod
    def quantize_weight(cls, weight, config):
        wl = weight_layout(config, weight.shape[1])
        bits, group_size, symmetric = wl.bits, wl.group_size, wl.symmetric
        if getattr(config, "clip_search", False) and has_values(weight):
            scale, zero_point = clip_search_qparams(weight, bits, group_size, symmetric)  # (N, K/g) each
            q = quantize(weight, scale, zero_point, bits, axis=-1, group_size=group_size)  # (N, K) int8
            return {"q": q, "scale": scale, "zero_point": zero_point}
        check_finite("weight", weight)
        packed, scale, zero_point = qops.group_quantize(weight, bits, group_size, symmetric)  # row-major, (N, K/g)
        return {"q": unpack(packed, bits), "scale": scale, "zero_point": zero_point}  # q (N, K) int8

    @classmethod
    def build(cls, config, bias, weight_dtype, *, q, scale, zero_point=None):
        """q (N, K) signed integers in the bits' range (unpacked), scale (N, K/g) fp32 > 0, zero_point (N, K/g)
        integers in range (None: zeros, symmetric configs only)."""
        if not isinstance(q, torch.Tensor) or q.dim() != 2:
            raise ValueError(f"q: expected a 2-D (out_features, in_features) integer tensor, got "
                             f"{getattr(q, 'shape', type(q).__name__)}")
        n, k = q.shape
        cls.check_shape(config, k, n)
        wl = weight_layout(config, k)
        bits, group_size, symmetric = wl.bits, wl.group_size, wl.symmetric
        check_quantized("q", q, (n, k), INT_DTYPES)
        check_quantized("scale", scale, (n, k // group_size), (torch.float32,))
        if zero_point is None:
            if not symmetric:
                raise ValueError("zero_point: required for an asymmetric (symmetric=False) config")
            zero_point = torch.zeros(n, k // group_size, dtype=torch.int8, device=q.device)
        check_quantized("zero_point", zero_point, (n, k // group_size), INT_DTYPES)
        if has_values(q):
            q_min, q_max = qrange(bits)
            if not bool((scale > 0).all() & torch.isfinite(scale).all()):
                raise ValueError("scale: expected finite scales > 0")
            if zero_point.numel() and (int(zero_point.min()) < q_min or int(zero_point.max()) > q_max):
                raise ValueError(f"zero_point: values must lie in [{q_min}, {q_max}] for {bits}-bit weights")
            if symmetric and bool((zero_point != 0).any()):
                raise ValueError("zero_point: a symmetric config needs zero points of 0")
        layout_id = wl.layout
        buffers = {"w_q": pack_layout(q, bits, layout_id),  # tiled int32, or row-major (N, K·bits/8) uint8 / int8
                   "w_scale": scale.contiguous(),  # (N, K/g) fp32
                   "w_zp": zero_point.to(torch.int8).contiguous(),  # (N, K/g) int8
                   "w_layout": torch.tensor(layout_id, dtype=torch.uint8, device=q.device)}  # () which layout
        return cls(config, k, n, buffers, bias, weight_dtype)

    def linear_2d(self, x):
        wl = self.weight_layout
        return qops.weight_only_linear(x, self.w_q, self.w_scale, self.w_zp, wl.bits, wl.group_size, self.bias,
                                       wl.layout)  # (M, N)

    def dequantize_weight(self, dtype=torch.float32):
        return qops.group_dequantize(self.w_q, self.w_scale, self.w_zp, self.bits, self.group_size,
                                     dequantize_dtype(dtype), self.layout).to(dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Convert a checkpoint's w_q from its recorded layout (none recorded: row-major) to this layer's."""
        key_q, key_layout = prefix + "w_q", prefix + "w_layout"
        if key_q in state_dict and prefix + "w_scale" in state_dict:
            theirs = int(state_dict[key_layout]) if key_layout in state_dict else LAYOUT_ROWMAJOR
            if theirs not in LAYOUTS:
                raise ValueError(f"{prefix[:-1] or 'layer'}: the checkpoint's weight layout {theirs} is unknown to "
                                 f"this qtorch (known: {LAYOUTS}, qtorch.quant.layout); upgrade qtorch")
            if theirs != self.layout:
                rowmajor = to_rowmajor(state_dict[key_q], state_dict[prefix + "w_scale"], self.bits, theirs)
                q = unpack(rowmajor, self.bits)[:, :self.in_features]  # (N, K) int8
                state_dict[key_q] = pack_layout(q, self.bits, self.layout)
            state_dict[key_layout] = torch.tensor(self.layout, dtype=torch.uint8, device=state_dict[key_q].device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
