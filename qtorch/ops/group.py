"""Group quantization of weights along K: qtorch::group_quantize and qtorch::group_dequantize.

qtorch::group_quantize   w (N, K) float -> q, S (N, K/g) fp32, Z (N, K/g) int8, one (S, Z) per g consecutive k:
    symmetric  S = max|w| / q_max, Z = 0;  asymmetric  S = (r_max − r_min)/(q_max − q_min), Z = round(q_min − r_min/S)
    q = clamp(round(w / S) + Z, q_min, q_max), signed N-bit; int4 packed two per byte (N, K/2) uint8, int8 as (N, K).
qtorch::group_dequantize ŵ = S (q − Z) -> (N, K) in `dtype`, q packed in `layout` (qtorch.quant.layout: 0 row-major
    as group_quantize writes it, 1 tiled for the mixed-input GEMM; N = scale.shape[0]).
g: any positive divisor of K (per channel: g = K) on every device. Backends (qtorch.ops.routing): the Triton kernels
(triton_kernels.group_quant: tiled for g in TILED_GROUP_SIZES, flat-index dequantization for any g), the tiled
layout's CUDA kernel (qtorch._C), and the PyTorch formula (CPU; on CUDA for the other group sizes of group_quantize,
said once, or without triton).
"""
import torch

from qtorch.ops import routing
from qtorch.ops._checks import ACT_DTYPES, check_bits_group, check_layout, check_matrix, check_packed_weight, packed_cols
from qtorch.ops._registry import extension_ready, reference_backend, reference_on_cuda, triton_ready, warn_once
from qtorch.quant.affine import compute_qparams, dequantize, quantize
from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED, tiled_chunk, unpack_tiled
from qtorch.quant.packing import pack, unpack

NO_TRITON = "triton is not installed"


def group_quantize_reference(w, bits, group_size, symmetric):
    scale, zp = compute_qparams(w, bits, symmetric=symmetric, granularity="group", axis=-1, group_size=group_size)
    q = quantize(w, scale, zp, bits, axis=-1, group_size=group_size)  # (N, K) int8
    return pack(q, bits), scale, zp.to(torch.int8)


def unpack_layout(q, scale, bits, layout):
    """The packed weight in `layout` -> q (N, K) int8."""
    if layout == LAYOUT_ROWMAJOR:
        return unpack(q, bits)
    return unpack_tiled(q, bits, scale.shape[0], q.shape[1] // 128 * tiled_chunk(bits))


def to_rowmajor(q, scale, bits, layout):
    """A packed weight in LAYOUT_ROWMAJOR (unpacking a tiled one: a full copy)."""
    return q if layout == LAYOUT_ROWMAJOR else pack(unpack_layout(q, scale, bits, layout), bits)


def dequantize_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to ask group_dequantize for when Ŵ is wanted in `dtype`: itself, or fp32 for other float dtypes
    (float64: gradcheck, float references), cast afterwards exactly (S (q − Z) is computed in fp32)."""
    return dtype if dtype in ACT_DTYPES else torch.float32


def group_dequantize_reference(q, scale, zero_point, bits, group_size, dtype, layout=LAYOUT_ROWMAJOR):
    values = unpack_layout(q, scale, bits, layout)  # (N, K) int8
    return dequantize(values, scale, zero_point.to(torch.int32), axis=-1, group_size=group_size).to(dtype)


def check_group_quantize(w, bits, group_size, symmetric) -> None:
    """The contract of group_quantize: w (N, K) bf16/fp16/fp32, bits 4 or 8, g a positive divisor of K (K even
    for int4)."""
    check_matrix("w", w, ACT_DTYPES)
    check_bits_group(bits, group_size, w.shape[1])


def check_group_dequantize(q, scale, zero_point, bits, group_size, dtype, layout) -> int:
    """The contract of group_dequantize: q packed in `layout` for N = scale.shape[0] rows (layout 0: (N, K·bits/8)
    as group_quantize writes it), scale (N, K/g) fp32, zero_point (N, K/g) int8, dtype bf16/fp16/fp32. Returns K."""
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits}")
    check_matrix("q", q, (check_layout(layout).packing(1, 8, bits)[1],))
    check_matrix("scale", scale, (torch.float32,))
    k = check_layout(layout).columns(q.shape[1], bits)
    check_packed_weight(q, scale, zero_point, bits, group_size, scale.shape[0], k, layout, q,
                        names=("q", "scale", "zero_point"))
    if dtype not in ACT_DTYPES:
        raise TypeError(f"dtype: expected bfloat16, float16 or float32, got {dtype}")
    return k


def _tiled_group(device, group_size, layout=LAYOUT_ROWMAJOR, **meta):
    if layout != LAYOUT_ROWMAJOR:
        return False, f"the Triton kernels read layout {LAYOUT_ROWMAJOR}, got layout {layout}"
    ok, reason = triton_ready(device)
    if not ok:
        return ok, reason
    from triton_kernels.group_quant import TILED_GROUP_SIZES

    if group_size not in TILED_GROUP_SIZES:
        return False, f"the tiled kernels take group sizes {TILED_GROUP_SIZES}, got {group_size}"
    return routing.YES


def _triton(device, layout, **meta):
    if layout != LAYOUT_ROWMAJOR:
        return False, f"the Triton kernels read layout {LAYOUT_ROWMAJOR}, got layout {layout}"
    return triton_ready(device)


def mixed_gemm_ready(layout, dtype, **meta):
    """The tiled layout's CUDA kernels (qtorch._C: the mixed-input GEMM) take 16-bit activations / outputs."""
    if layout != LAYOUT_TILED:
        return False, f"reads layout {LAYOUT_TILED} (tiled), got layout {layout}"
    ok, reason = extension_ready()
    if not ok:
        return ok, reason
    if dtype not in (torch.bfloat16, torch.float16):
        return False, f"needs bf16/fp16, got {dtype}"
    return routing.YES


def warn_tiled_unpacked(op_name: str) -> None:
    warn_once(op_name + "_tiled", f"qtorch: {op_name} on a tiled weight without qtorch._C's mixed-input GEMM (or "
                                  "with float32 activations) unpacks the weight on every call (slow); build qtorch "
                                  "with nvcc and use bfloat16/float16 activations")


def _quantize_triton(w, bits, group_size, symmetric):
    from triton_kernels.group_quant import group_quantize as launch

    return launch(w.contiguous(), bits, group_size, symmetric)


def _quantize_torch_cuda(w, bits, group_size, symmetric):
    warn_once(f"group_quantize-{group_size}", f"qtorch: group_quantize with group_size={group_size} runs the "
                                              "PyTorch formula on CUDA (several passes over w; the Triton kernel "
                                              "takes powers of 2 from 16 to 256, with triton installed)")
    return group_quantize_reference(w, bits, group_size, symmetric)


routing.register_backends("group_quantize", [
    reference_backend(group_quantize_reference),
    routing.Backend("triton", ("cuda", "cpu"), _tiled_group, _quantize_triton),
    routing.Backend("torch_cuda", ("cuda",), lambda **meta: routing.YES, _quantize_torch_cuda),
])


@torch.library.triton_op("qtorch::group_quantize", mutates_args=())
def group_quantize(w: torch.Tensor, bits: int, group_size: int, symmetric: bool) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor]:
    """w (N, K) -> (q (N, K·bits/8), scale (N, K/g) fp32, zero_point (N, K/g) int8)."""
    check_group_quantize(w, bits, group_size, symmetric)
    backend = routing.select("group_quantize", device=w.device.type, group_size=group_size)
    return backend.run(w, bits, group_size, symmetric)


@group_quantize.register_fake
def _(w, bits, group_size, symmetric):
    check_group_quantize(w, bits, group_size, symmetric)
    n, k = w.shape
    q = w.new_empty((n, packed_cols(k, bits)), dtype=torch.uint8 if bits == 4 else torch.int8)
    return q, w.new_empty((n, k // group_size), dtype=torch.float32), w.new_empty((n, k // group_size),
                                                                                   dtype=torch.int8)


def _dequantize_triton(launcher: str):
    """Run triton_kernels.group_quant.<launcher> on contiguous operands."""
    def run(q, scale, zero_point, bits, group_size, dtype, layout):
        from triton_kernels import group_quant

        return getattr(group_quant, launcher)(q.contiguous(), scale.contiguous(), zero_point.contiguous(), bits,
                                              group_size, dtype)
    return run


def _dequantize_mixed(q, scale, zero_point, bits, group_size, dtype, layout):
    k = q.shape[1] // 128 * tiled_chunk(bits)
    return torch.ops.qtorch._dequant_tiled_cuda(q, scale.contiguous(), zero_point.contiguous(), bits, group_size, k,
                                                dtype)


def _dequantize_unpacked(q, scale, zero_point, bits, group_size, dtype, layout):
    warn_tiled_unpacked("group_dequantize")
    return torch.ops.qtorch.group_dequantize(to_rowmajor(q, scale, bits, layout), scale, zero_point, bits, group_size,
                                             dtype, LAYOUT_ROWMAJOR)


routing.register_backends("group_dequantize", [
    reference_backend(group_dequantize_reference),
    routing.Backend("cuda_dequant_tiled", ("cuda",), mixed_gemm_ready, _dequantize_mixed),
    routing.Backend("triton_tiled", ("cuda", "cpu"), _tiled_group, _dequantize_triton("group_dequantize_tiled")),
    routing.Backend("triton_flat", ("cuda", "cpu"), _triton, _dequantize_triton("group_dequantize_flat")),
    routing.Backend("tiled_unpacked", ("cuda",), lambda layout, **meta: (layout == LAYOUT_TILED, "reads layout 1"),
                    _dequantize_unpacked),
    reference_on_cuda("group_dequantize", group_dequantize_reference, NO_TRITON),
])


@torch.library.triton_op("qtorch::group_dequantize", mutates_args=())
def group_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, group_size: int,
                     dtype: torch.dtype, layout: int = 0) -> torch.Tensor:
    """ŵ = S (q − Z) -> (N, K) in dtype."""
    check_group_dequantize(q, scale, zero_point, bits, group_size, dtype, layout)
    backend = routing.select("group_dequantize", device=q.device.type, group_size=group_size, layout=layout,
                             dtype=dtype)
    return backend.run(q, scale, zero_point, bits, group_size, dtype, layout)


@group_dequantize.register_fake
def _(q, scale, zero_point, bits, group_size, dtype, layout=0):
    k = check_group_dequantize(q, scale, zero_point, bits, group_size, dtype, layout)
    return q.new_empty((scale.shape[0], k), dtype=dtype)
