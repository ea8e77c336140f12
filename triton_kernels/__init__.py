"""Triton kernels of qtorch: the CUDA implementations of the quantization and weight-only qtorch:: ops.

Launchers (called only by the backends in qtorch/ops/, which check the arguments and route; a launcher launches its
kernel, plus its own split-K reduction where it splits, and nothing else):
- act_quant.quantize_per_token(x) -> (q, scale, zero_point)                              (qtorch::quantize_per_token)
- group_quant.group_quantize(w, bits, group_size, symmetric) -> (q, scale, zp)            (qtorch::group_quantize)
- group_quant.group_dequantize_tiled / group_dequantize_flat(q, scale, zp, bits, group_size, dtype) -> w
                                                                                          (qtorch::group_dequantize)
- weight_only_gemv.gemv / weight_only_mma.mma_swapped / weight_only_mma.mma_tiled
  (x, w_q, w_scale, w_zp, bits, group_size, bias, y) writing y                            (qtorch::weight_only_linear)

Modules are imported lazily by the ops so that `import qtorch` never needs triton.
"""
