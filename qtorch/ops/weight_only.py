"""qtorch::weight_only_linear — y = x · ŵᵀ + bias with a group-quantized weight ŵ[n, k] = S[n, k/g] (q[n, k] − Z[n, k/g]).

q int4/int8 packed in `layout` (qtorch.quant.layout: 0 row-major as group_quantize writes it, 1 tiled for the
mixed-input GEMM), S (N, K/g) fp32, Z (N, K/g) int8 (per-channel int8: g = K); the output has x's dtype and
N = w_scale.shape[0] columns.

Backends (qtorch.ops.routing), in the order measured on the H200 (benchmarks/NOTES.md):
- cuda_mixed_gemm (layout 1, qtorch._C, bf16/fp16 x): the mixed-input GEMM, which itself serves M up to
  mixed_max_m() (dequantizing in registers; on sm_90 above M = 16 as the register A operand of warpgroup MMAs) and
  dequantizes once + cuBLAS above (by the runtime M: no guard under torch.compile);
- triton_gemv (M <= GEMV_MAX_M): CUDA-core GEMV over int32 words (bf16/fp16 x, K split over programs);
- triton_mma_swapped (M <= SWAPPED_MAX_M): tensor cores with the dequantized weight as the left tl.dot operand;
- triton_mma (M < DEQUANT_MIN_M, fp32 x, any group size): tiles dequantized in registers, x on the left;
- dequant_cublas (prefill): qtorch::group_dequantize once to x's dtype, then F.linear (cuBLAS): the tiled kernel
  measured 0.27-0.35x bf16 at M = 2048 and 0.30x at M = 128, while dequantizing costs about one pass over the bf16
  weight (~25-60 us at 4096 x 11008) next to a GEMM of 100+ us at these M;
- tiled_unpacked (layout 1 without the mixed-input GEMM or with fp32 x): unpack to layout 0 per call (said once);
- the PyTorch reference (CPU; on CUDA only without triton, said once).
The M limits are preferences (speed): each backend whose can_implement holds computes the same result for every M.
Under torch.compile a symbolic M is decided by its size hint (optimization_hint: the example value of the first
compile, no guard, so one graph serves every M); an M without a hint counts as MMA_DEFAULT_M (the tiled kernel).
"""
import functools

import torch
import torch.nn.functional as F

from qtorch.ops import routing
from qtorch.ops._checks import ACT_DTYPES, check_matrix, check_packed_weight, check_vector
from qtorch.ops._registry import reference_backend, reference_on_cuda, triton_ready
from qtorch.ops.group import (NO_TRITON, group_dequantize_reference, mixed_gemm_ready, to_rowmajor,
                              warn_tiled_unpacked)
from qtorch.quant.layout import LAYOUT_ROWMAJOR, LAYOUT_TILED

# Largest M that the mixed-input GEMM serves; larger M dequantize the weight once and multiply with cuBLAS inside the
# same op. H200 sweeps (benchmarks/NOTES.md): the register kernel up to 64 ("mixed-input GEMM v2": at M = 128
# dequantize + cuBLAS is as fast or faster on every shape); int4 on sm_90 the warpgroup kernel with register A up
# to 1024 ("v6 measured": less total time than dequantize + cuBLAS over the three LLaMA-2-7B shapes at M = 128-1024,
# about the same at 2048); int8 on sm_90 the same kernel up to 256 where it can hold the weight (K and its groups whole
# 64-value stages: csrc/mixed_gemm/launch.cu wgmma_can_implement; session 9 over the three shapes: M = 128 94.6 vs
# 161.0 us for dequantize + cuBLAS, M = 256 152.0 vs 178.0, M = 512 252.9 vs 242.0).
MIXED_MAX_M = 64
MIXED_MAX_M_SM90_INT4 = 1024
MIXED_MAX_M_SM90_INT8 = 256
WGMMA_STAGE_K = 64  # K values per stage of the warpgroup kernel (launch.cu kWgmmaChunk)


@functools.cache
def _is_sm90(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] == 9


def mixed_max_m(bits: int, device: torch.device | None = None, k: int | None = None,
                group_size: int | None = None) -> int:
    """The M up to which the mixed-input GEMM serves a call on `device` (default: the current CUDA device, none on a
    machine without CUDA) for a (N, k) weight in groups of group_size: on compute capability 9.x
    MIXED_MAX_M_SM90_INT4 for int4 and MIXED_MAX_M_SM90_INT8 for int8 whose k and groups are whole warpgroup-kernel
    stages; MIXED_MAX_M otherwise (k unknown included)."""
    if device is None:
        if not torch.cuda.is_available():
            return MIXED_MAX_M
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type != "cuda":
        return MIXED_MAX_M
    index = device.index if device.index is not None else torch.cuda.current_device()
    if not _is_sm90(index):
        return MIXED_MAX_M
    if bits == 4:
        return MIXED_MAX_M_SM90_INT4
    whole_stages = (k is not None and group_size is not None and k % WGMMA_STAGE_K == 0
                    and (group_size == k or group_size % WGMMA_STAGE_K == 0))
    return MIXED_MAX_M_SM90_INT8 if whole_stages else MIXED_MAX_M


# Largest M the CUDA-core GEMV kernel is preferred for.
GEMV_MAX_M = 1
# Largest M the swapped tensor-core kernel is preferred for.
SWAPPED_MAX_M = 64
# From this M on (prefill) the dequantized weight with cuBLAS is preferred.
DEQUANT_MIN_M = 256
# The M assumed for a symbolic M without a size hint.
MMA_DEFAULT_M = 128


def weight_only_linear_reference(x, w_q, w_scale, w_zp, bits, group_size, bias, layout=LAYOUT_ROWMAJOR):
    w = group_dequantize_reference(w_q, w_scale, w_zp, bits, group_size, torch.float32, layout)  # (N, K) fp32
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def check_weight_only_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout) -> None:
    """The contract: x (M, K) bf16/fp16/fp32; w_q packed in a known layout for N = w_scale.shape[0] rows and K
    columns; w_scale (N, K/g) fp32, w_zp (N, K/g) int8; g a positive divisor of K (K even for int4); bias (N,)."""
    check_matrix("x", x, ACT_DTYPES)
    check_matrix("w_scale", w_scale, (torch.float32,))
    n, k = w_scale.shape[0], x.shape[1]
    check_packed_weight(w_q, w_scale, w_zp, bits, group_size, n, k, layout, x)
    check_vector("bias", bias, n, ACT_DTYPES, x)


def _size_hint(m) -> int:
    if isinstance(m, int):
        return m
    from torch.fx.experimental import symbolic_shapes

    if hasattr(symbolic_shapes, "optimization_hint"):
        return symbolic_shapes.optimization_hint(m, fallback=MMA_DEFAULT_M)
    hint = m.node.hint  # torch < 2.12
    return MMA_DEFAULT_M if hint is None else int(hint)


def linear_meta(x, w_q, w_scale, bits, group_size, layout) -> dict:
    """What the backends' can_implement and preferred read (metadata only, also on fake tensors). M, which only
    orders preferences, is its size hint; N, K and the weight's alignment decide correctness and are read exactly
    (a guard when symbolic: the weights are static in practice)."""
    return {"device": x.device.type, "m": _size_hint(x.shape[0]), "n": int(w_scale.shape[0]), "k": int(x.shape[1]),
            "bits": bits, "group_size": group_size, "layout": layout, "dtype": x.dtype,
            "words_aligned": bool(w_q.storage_offset() % 4 == 0 and w_q.stride(0) % 4 == 0)}


def _triton_kernel_ready(device, m, n, k, layout, **meta):
    if layout != LAYOUT_ROWMAJOR:
        return False, f"the Triton kernels read layout {LAYOUT_ROWMAJOR}, got layout {layout}"
    if m == 0 or n == 0 or k == 0:
        return False, f"needs a non-empty problem, got M={m}, N={n}, K={k}"
    return triton_ready(device)


def _words_ready(dtype, words_aligned, **meta):
    """GEMV and the swapped kernel read int32 words: 16-bit x and 4-byte aligned weight rows."""
    if dtype == torch.float32:
        return False, "needs bf16/fp16 x"
    if not words_aligned:
        return False, "needs 4-byte aligned w_q rows (storage offset and row stride multiples of 4)"
    return routing.YES


def _all(*predicates):
    def can_implement(**meta):
        for predicate in predicates:
            ok, reason = predicate(**meta)
            if not ok:
                return ok, reason
        return routing.YES
    return can_implement


def _gemv_layout(k, bits, group_size, **meta):
    from triton_kernels.weight_only_gemv import gemv_group_words_log2

    if gemv_group_words_log2(k, bits, group_size) is None:
        return False, ("needs K a multiple of 32/bits and a power-of-2 group size of at least 128/bits values (or "
                       f"group_size == K), got K={k}, group_size={group_size}")
    return routing.YES


def _swapped_layout(k, bits, group_size, **meta):
    from triton_kernels.weight_only_mma import swapped_block_k

    if swapped_block_k(k, bits, group_size) is None:
        return False, ("needs K·bits a multiple of 32 and a group size that is a power of 2 times 16, 32, 64 or 128 "
                       f"(or group_size == K), got K={k}, group_size={group_size}")
    return routing.YES


def _launch(launcher: str):
    """Allocate y (M, N) and run the Triton launcher `launcher` (weight_only_gemv.gemv, weight_only_mma.*)."""
    def run(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
        from triton_kernels import weight_only_gemv, weight_only_mma

        launch = getattr(weight_only_gemv if launcher == "gemv" else weight_only_mma, launcher)
        y = x.new_empty((x.shape[0], w_scale.shape[0]))
        launch(x if x.stride(1) == 1 else x.contiguous(), w_q if w_q.stride(1) == 1 else w_q.contiguous(), w_scale,
               w_zp, bits, group_size, bias, y)
        return y
    return run


def _empty(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
    """M, N or K = 0: y = bias broadcast (zeros without a bias)."""
    y = x.new_zeros((x.shape[0], w_scale.shape[0]))
    return y if bias is None else y.copy_(bias.expand_as(y))


def _mixed_gemm(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
    return torch.ops.qtorch._mixed_gemm_cuda.default(x, w_q, w_scale, w_zp, bits, group_size, bias,
                                                     mixed_max_m(bits, x.device, x.shape[1], group_size))


def _tiled_unpacked(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
    warn_tiled_unpacked("weight_only_linear")
    return torch.ops.qtorch.weight_only_linear(x, to_rowmajor(w_q, w_scale, bits, layout), w_scale, w_zp, bits,
                                               group_size, bias, LAYOUT_ROWMAJOR)


def _dequant_cublas(x, w_q, w_scale, w_zp, bits, group_size, bias, layout):
    w = torch.ops.qtorch.group_dequantize(w_q, w_scale, w_zp, bits, group_size, x.dtype, layout)  # (N, K)
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


routing.register_backends("weight_only_linear", [
    reference_backend(weight_only_linear_reference),
    routing.Backend("empty", ("cuda",), lambda m, n, k, **meta: (m == 0 or n == 0 or k == 0, "needs M, N or K = 0"),
                    _empty),
    routing.Backend("cuda_mixed_gemm", ("cuda",), mixed_gemm_ready, _mixed_gemm),
    routing.Backend("triton_gemv", ("cuda", "cpu"), _all(_triton_kernel_ready, _words_ready, _gemv_layout),
                    _launch("gemv"), preferred=lambda m, **meta: m <= GEMV_MAX_M),
    routing.Backend("triton_mma_swapped", ("cuda", "cpu"), _all(_triton_kernel_ready, _words_ready, _swapped_layout),
                    _launch("mma_swapped"), preferred=lambda m, **meta: m <= SWAPPED_MAX_M),
    routing.Backend("triton_mma", ("cuda", "cpu"), _triton_kernel_ready, _launch("mma_tiled"),
                    preferred=lambda m, **meta: m < DEQUANT_MIN_M),
    routing.Backend("dequant_cublas", ("cuda", "cpu"),
                    lambda layout, **meta: (layout == LAYOUT_ROWMAJOR, "dequantizes layout 0 (layout 1: the mixed-input "
                                                                       "GEMM or tiled_unpacked)"), _dequant_cublas),
    routing.Backend("tiled_unpacked", ("cuda",), lambda layout, **meta: (layout == LAYOUT_TILED, "reads layout 1"),
                    _tiled_unpacked),
    reference_on_cuda("weight_only_linear", weight_only_linear_reference, NO_TRITON),
])


@torch.library.triton_op("qtorch::weight_only_linear", mutates_args=())
def weight_only_linear(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, w_zp: torch.Tensor, bits: int,
                       group_size: int, bias: torch.Tensor | None, layout: int = 0) -> torch.Tensor:
    """y (M, N) = x (M, K) · (S (q − Z))ᵀ + bias, in x's dtype."""
    check_weight_only_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout)
    backend = routing.select("weight_only_linear", **linear_meta(x, w_q, w_scale, bits, group_size, layout))
    return backend.run(x, w_q, w_scale, w_zp, bits, group_size, bias, layout)


@weight_only_linear.register_fake
def _(x, w_q, w_scale, w_zp, bits, group_size, bias, layout=0):
    check_weight_only_linear(x, w_q, w_scale, w_zp, bits, group_size, bias, layout)
    return x.new_empty((x.shape[0], w_scale.shape[0]))
