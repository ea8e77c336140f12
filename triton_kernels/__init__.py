"""Triton kernels of qtorch: the CUDA implementations of the quantization and weight-only qtorch:: ops.

Launchers (called from the op bodies in qtorch/ops/, and from the kernel tests):
- act_quant.quantize_per_token(x) -> (q, scale, zero_point)                      (qtorch::quantize_per_token)
- group_quant.group_quantize(w, bits, group_size, symmetric) -> (q, scale, zp)    (qtorch::group_quantize)
- group_quant.group_dequantize(q, scale, zp, bits, group_size, dtype) -> w         (qtorch::group_dequantize)
- weight_only.weight_only_linear(x, w_q, w_scale, w_zp, bits, group_size, bias)   (qtorch::weight_only_linear)

Modules are imported lazily by the ops so that `import qtorch` never needs triton.
"""
