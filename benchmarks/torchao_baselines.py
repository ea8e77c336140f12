"""torchao's configs matching qtorch's schemes: the baselines of the speed harness (qtorch.eval.speed) for
`python -m qtorch bench` (imported lazily from the repository root) and benchmarks/bench_models.py. torchao is
imported here, never under qtorch/.

A baselines mapping is {qtorch scheme name: (impl name, quantize(model) in place)}.
"""
from collections.abc import Callable

TORCHAO_NAMES = {"w8a8": "torchao_int8dq", "w4a16": "torchao_int4wo_g128", "w8a16": "torchao_int8wo"}


def torchao_available() -> bool:
    try:
        import torchao.quantization  # noqa: F401
    except Exception:  # ImportError, or a torchao built for another torch failing at import
        return False
    return True


def torchao_config(scheme: str):
    """torchao's matching config; set_inductor_config=False so every implementation compiles with one inductor
    configuration (qtorch.eval.speed.inductor_settings)."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig
    from torchao.quantization import Int8WeightOnlyConfig as AOInt8WeightOnlyConfig

    if scheme == "w8a8":
        return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    if scheme == "w4a16":  # tinygemm layout: PyTorch's built-in int4 kernels (the default "plain" needs mslk)
        return Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d", set_inductor_config=False)
    return AOInt8WeightOnlyConfig(set_inductor_config=False)


def torchao_baselines(schemes) -> dict[str, tuple[str, Callable]]:
    """The torchao baseline of each scheme that has one."""
    def quantizer(scheme):
        def quantize(model):
            from torchao.quantization import quantize_

            quantize_(model, torchao_config(scheme))
        return quantize

    return {s: (TORCHAO_NAMES[s], quantizer(s)) for s in schemes if s in TORCHAO_NAMES}
