"""torchao's quantization configs matching qtorch's schemes (imported lazily: torchao is optional)."""
from collections.abc import Callable

import torch.nn as nn

# qtorch scheme -> the impl name torchao's matching config runs under in the benchmarks
NAMES = {"w8a8": "torchao_int8dq", "w4a16": "torchao_int4wo_g128", "w8a16": "torchao_int8wo",
         "fp8": "torchao_fp8_rowwise"}


def available() -> bool:
    try:
        import torchao.quantization  # noqa: F401
    except Exception:  # ImportError, or a torchao built for another torch failing at import
        return False
    return True


def config(scheme: str):
    """torchao's config for `scheme` (NAMES); set_inductor_config=False so every implementation compiles with one
    inductor configuration (qtorch.eval.speed.inductor_settings)."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig
    from torchao.quantization import Int8WeightOnlyConfig as AOInt8WeightOnlyConfig

    if scheme == "w8a8":
        return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    if scheme == "w4a16":  # tinygemm layout: PyTorch's built-in int4 kernels (the default "plain" needs mslk)
        return Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d", set_inductor_config=False)
    if scheme == "w8a16":
        return AOInt8WeightOnlyConfig(set_inductor_config=False)
    if scheme == "fp8":  # e4m3 per token x e4m3 per output channel, torch._scaled_mm row-wise (torchao 0.17)
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)
    raise ValueError(f"scheme: no torchao config for {scheme!r}; known: {', '.join(NAMES)}")


def quantizer(scheme: str) -> Callable[[nn.Module], None]:
    """model -> None: torchao.quantization.quantize_(model, config(scheme)) in place."""
    def apply(model: nn.Module) -> None:
        from torchao.quantization import quantize_

        quantize_(model, config(scheme))
    return apply
