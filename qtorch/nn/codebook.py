"""K-means codebook weights: ŵ[n, k] = C[n, k // g][i[n, k]], y = x ŵᵀ + b (qtorch::codebook_linear).

One codebook of 2^bits float32 centroids per output channel (g = K) or per group of g along K, from 1-D K-means
(qtorch.quant.kmeans_quantize); indices stored unsigned in the smallest 2-, 4- or 8-bit container, packed along K.
"""
import torch

import qtorch.ops as qops
from qtorch.config import CodebookConfig
from qtorch.nn.base import QuantLinear, check_quantized, has_values
from qtorch.quant.kmeans import kmeans_dequantize, kmeans_quantize
from qtorch.quant.packing import container_bits, pack, unpack

INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
CODEBOOK_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class CodebookLinear(QuantLinear):
    configs = (CodebookConfig,)

    def __init__(self, config, in_features, out_features, buffers, bias, weight_dtype):
        super().__init__(config, in_features, out_features, buffers, bias, weight_dtype)
        self.container = container_bits(config.bits)  # bits per stored index
        self.group_size = config.group_size or in_features

    @classmethod
    def check_shape(cls, config, in_features, out_features):
        if config.group_size is not None and in_features % config.group_size:
            raise ValueError(f"in_features: {in_features} is not divisible by group_size={config.group_size}")
        per_byte = 8 // container_bits(config.bits)
        if in_features % per_byte:
            raise ValueError(f"in_features: {in_features} must be a multiple of {per_byte} to pack "
                             f"{container_bits(config.bits)}-bit indices")

    @classmethod
    def quantize_weight(cls, weight, config):
        n, k = weight.shape
        entries = 1 << config.bits
        if not has_values(weight):  # meta: shapes only, for loading a checkpoint
            g = config.group_size or k
            return {"indices": torch.empty(n, k, dtype=torch.uint8, device=weight.device),
                    "codebook": torch.empty(n, k // g, entries, dtype=torch.float32, device=weight.device)}
        if config.group_size is None:
            indices, codebook = kmeans_quantize(weight, config.bits, granularity="channel", axis=0,
                                                seed=config.seed, max_iter=config.max_iter)  # (N, K), (N, E)
        else:
            indices, codebook = kmeans_quantize(weight, config.bits, granularity="group", axis=-1,
                                                group_size=config.group_size, seed=config.seed,
                                                max_iter=config.max_iter)  # (N, K), (N, K/g, E)
        return {"indices": indices, "codebook": codebook}

    @classmethod
    def build(cls, config, bias, weight_dtype, *, indices, codebook):
        """indices (N, K) integers in [0, 2^bits); codebook (N, K/g, 2^bits) float, or (N, 2^bits) per channel."""
        if not isinstance(indices, torch.Tensor) or indices.dim() != 2:
            raise ValueError(f"indices: expected a 2-D (out_features, in_features) integer tensor, got "
                             f"{getattr(indices, 'shape', type(indices).__name__)}")
        n, k = indices.shape
        cls.check_shape(config, k, n)
        g, entries = config.group_size or k, 1 << config.bits
        check_quantized("indices", indices, (n, k), INDEX_DTYPES)
        if isinstance(codebook, torch.Tensor) and config.group_size is None and codebook.dim() == 2:
            codebook = codebook.unsqueeze(1)  # (N, 1, E)
        check_quantized("codebook", codebook, (n, k // g, entries), CODEBOOK_DTYPES)
        if has_values(indices):
            if int(indices.min()) < 0 or int(indices.max()) >= entries:
                raise ValueError(f"indices: values must lie in [0, {entries - 1}] for a {config.bits}-bit codebook")
            if not bool(torch.isfinite(codebook).all()):
                raise ValueError("codebook: contains NaN or Inf")
        buffers = {"indices": pack(indices.to(torch.uint8), container_bits(config.bits), signed=False),  # (N, K·c/8)
                   "codebook": codebook.float().contiguous()}  # (N, K/g, E) fp32
        return cls(config, k, n, buffers, bias, weight_dtype)

    def linear_2d(self, x):
        return qops.codebook_linear(x, self.indices, self.codebook, self.container, self.group_size, self.bias)

    def dequantize_weight(self, dtype=torch.float32):
        idx = unpack(self.indices, self.container, signed=False)  # (N, K) uint8
        return kmeans_dequantize(idx, self.codebook, granularity="group", axis=-1, group_size=self.group_size).to(dtype)
