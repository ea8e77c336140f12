"""Quantization scheme configs: frozen dataclasses naming how a linear layer is quantized.

Every config maps to one QuantLinear subclass (qtorch.nn) and serializes to a small JSON dict (`to_dict`,
`config_from_dict`), which a quantized layer keeps in its state_dict so that loading a checkpoint into a layer of
another scheme is a clear error. Importing this module does not import torch.

  W8A8DynamicConfig      int8 weights (per channel, symmetric) × int8 activations (per token, asymmetric, at run time)
  W8A8StaticConfig       int8 weights × int8 activations with one (S_X, Z_X) from calibration; output float or int8
  Int8WeightOnlyConfig   int8 weights per channel, float activations
  GroupWeightOnlyConfig  int4 / int8 weights per group of `group_size` along K, float activations
  CodebookConfig         K-means codebook weights (2–8 bits) per channel or per group, float activations
  PerLayerConfig         one of the above (or None: keep float) per layer name, e.g. from qtorch.plan_bits
"""
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import ClassVar

GROUP_SIZES = (32, 64, 128, 256)
OBSERVERS = ("minmax", "moving_average", "percentile")
STATIC_OUTPUTS = ("float", "int8")


def _check_int(name: str, value, allowed) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


class QuantConfig:
    """Base of the scheme configs; `scheme` is the stable name stored in checkpoints."""

    scheme: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, **asdict(self)}


@dataclass(frozen=True)
class W8A8DynamicConfig(QuantConfig):
    """y = S_X[m] S_W[n] (Σ_k q_X q_W − Z_X[m] Σ_k q_W[n, k]) + b: per-token asymmetric activations quantized at run
    time, per-channel symmetric weights (Z_W = 0); Σ_k q_W precomputed at conversion."""

    scheme: ClassVar[str] = "w8a8_dynamic"


@dataclass(frozen=True)
class W8A8StaticConfig(QuantConfig):
    """W8A8 with one per-tensor asymmetric (S_X, Z_X) from calibration (`qtorch.calibrate`).

    observer: "minmax" (global min/max over all batches), "moving_average" (exponential moving average of each batch's
    min/max, weight `averaging_constant`), "percentile" (mean over batches of the `percentile` / 100 − `percentile`
    quantiles; clips outliers).
    output: "float" — y in the input dtype from int8_scaled_mm; "int8" — the integer-only layer of Jacob et al. 2018
    (arXiv:1712.05877; int8_linear_requant: q_Y = M0·2^-31·2^-n (Σ q_W q_X − Z_X Σ q_W + b_q) + Z_Y), whose output
    (S_Y, Z_Y) is also calibrated; `forward` returns S_Y (q_Y − Z_Y) in the input dtype and `forward_int8` the int8
    q_Y itself.
    """

    scheme: ClassVar[str] = "w8a8_static"
    observer: str = "minmax"
    percentile: float = 99.99
    averaging_constant: float = 0.01
    output: str = "float"

    def __post_init__(self):
        if self.observer not in OBSERVERS:
            raise ValueError(f"observer: expected one of {OBSERVERS}, got {self.observer!r}")
        if self.output not in STATIC_OUTPUTS:
            raise ValueError(f"output: expected one of {STATIC_OUTPUTS}, got {self.output!r}")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)) \
                or not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile: expected a number in (50, 100], got {self.percentile!r}")
        if isinstance(self.averaging_constant, bool) or not isinstance(self.averaging_constant, (int, float)) \
                or not 0.0 < self.averaging_constant <= 1.0:
            raise ValueError(f"averaging_constant: expected a number in (0, 1], got {self.averaging_constant!r}")


@dataclass(frozen=True)
class Int8WeightOnlyConfig(QuantConfig):
    """ŵ[n, k] = S[n] q[n, k], symmetric int8 per output channel; y = x ŵᵀ + b in the input dtype."""

    scheme: ClassVar[str] = "int8_weight_only"


@dataclass(frozen=True)
class GroupWeightOnlyConfig(QuantConfig):
    """ŵ[n, k] = S[n, k // g] (q[n, k] − Z[n, k // g]), `bits` ∈ {4, 8}, g = group_size ∈ {32, 64, 128, 256}.

    symmetric: Z = 0 (S from max|w|) or an int8 zero point per group (S, Z from [min(w), max(w)]); same storage.
    Default (None): asymmetric for 4 bits, chosen by measured accuracy (all-MiniLM-L6-v2, g = 128, round-to-nearest:
    mean embedding cosine 0.961 asymmetric vs 0.942 symmetric, benchmarks/NOTES.md); symmetric for 8 bits.
    clip_search: choose each group's clipping ratio α from the grid α = 1, 0.975, ..., 0.5 (S from α·max|w|, or from
    the range α·[r_min, r_max] when asymmetric) minimising the group's ‖w − ŵ‖²; changes the scales only (same
    storage), never worse than α = 1 in ‖W − Ŵ‖.
    """

    scheme: ClassVar[str] = "group_weight_only"
    bits: int = 4
    group_size: int = 128
    symmetric: bool | None = None
    clip_search: bool = False

    def __post_init__(self):
        _check_int("bits", self.bits, (4, 8))
        if self.symmetric is None:
            object.__setattr__(self, "symmetric", self.bits != 4)
        _check_int("group_size", self.group_size, GROUP_SIZES)
        _check_bool("symmetric", self.symmetric)
        _check_bool("clip_search", self.clip_search)


@dataclass(frozen=True)
class CodebookConfig(QuantConfig):
    """ŵ[n, k] = C[n, k // g][i[n, k]]: a K-means codebook of 2^bits float32 centroids per output channel
    (group_size None) or per group; indices stored in a 2-, 4- or 8-bit container (3 bits use 4, 5–7 use 8)."""

    scheme: ClassVar[str] = "codebook"
    bits: int = 4
    group_size: int | None = None
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self):
        _check_int("bits", self.bits, range(2, 9))
        if self.group_size is not None:
            _check_int("group_size", self.group_size, GROUP_SIZES)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter: expected a positive int, got {self.max_iter!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed: expected an int, got {type(self.seed).__name__}")


SCHEME_CONFIGS = (W8A8DynamicConfig, W8A8StaticConfig, Int8WeightOnlyConfig, GroupWeightOnlyConfig, CodebookConfig)
_BY_NAME = {cls.scheme: cls for cls in SCHEME_CONFIGS}


def config_from_dict(d: Mapping) -> QuantConfig:
    """Inverse of `QuantConfig.to_dict`."""
    if not isinstance(d, Mapping) or d.get("scheme") not in _BY_NAME:
        raise ValueError(f"config: expected a dict with 'scheme' in {sorted(_BY_NAME)}, got {d!r}")
    kwargs = {k: v for k, v in d.items() if k != "scheme"}
    return _BY_NAME[d["scheme"]](**kwargs)


def check_config(name: str, config, allow_none: bool = False) -> None:
    if config is None and allow_none:
        return
    if not isinstance(config, SCHEME_CONFIGS):
        names = ", ".join(c.__name__ for c in SCHEME_CONFIGS)
        raise TypeError(f"{name}: expected one of {names}{' or None' if allow_none else ''}, "
                        f"got {type(config).__name__}")


@dataclass(frozen=True)
class PerLayerConfig:
    """A scheme per layer name (the qualified name in `model.named_modules()`); None keeps a layer float.

    Layers not listed get `default` (None: not quantized). Build from a dict: PerLayerConfig({"layers.0.wq": cfg}).
    """

    layers: Mapping[str, QuantConfig | None] = field(default_factory=dict)
    default: QuantConfig | None = None

    def __post_init__(self):
        if not isinstance(self.layers, Mapping):
            raise TypeError(f"layers: expected a mapping from layer name to config, got {type(self.layers).__name__}")
        for name, cfg in self.layers.items():
            if not isinstance(name, str):
                raise TypeError(f"layers: expected str layer names, got {name!r}")
            check_config(f"layers[{name!r}]", cfg, allow_none=True)
        check_config("default", self.default, allow_none=True)
        object.__setattr__(self, "layers", dict(self.layers))

    def config_for(self, name: str) -> QuantConfig | None:
        return self.layers.get(name, self.default)

    def to_dict(self) -> dict:
        return {"layers": {k: None if v is None else v.to_dict() for k, v in self.layers.items()},
                "default": None if self.default is None else self.default.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping) -> "PerLayerConfig":
        layers = {k: None if v is None else config_from_dict(v) for k, v in d.get("layers", {}).items()}
        default = d.get("default")
        return cls(layers, None if default is None else config_from_dict(default))
