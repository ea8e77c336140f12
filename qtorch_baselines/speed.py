"""The baselines of the model speed benchmark (qtorch.eval.speed.run_speed's `baselines`), per qtorch scheme."""
from qtorch_baselines import torchao
from qtorch_baselines.fp8 import quantize_fp8_rowwise_

FP8_ROWWISE = "fp8_rowwise"  # qtorch_baselines.fp8: per-token e4m3 cast (compiled with the model) + torch._scaled_mm


def speed_baselines(schemes, with_torchao: bool) -> dict:
    """{qtorch scheme: {impl name: quantize(model) in place}}: torchao's matching config (with_torchao), and beside
    W8A8 the FP8 row-wise alternatives (ours through torch._scaled_mm; torchao's float8 dynamic config)."""
    out = {}
    for scheme in schemes:
        impls = {torchao.NAMES[scheme]: torchao.quantizer(scheme)} if with_torchao else {}
        if scheme == "w8a8":
            impls[FP8_ROWWISE] = quantize_fp8_rowwise_
            if with_torchao:
                impls[torchao.NAMES["fp8"]] = torchao.quantizer("fp8")
        out[scheme] = impls
    return out
