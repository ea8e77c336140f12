"""Loss scaling for half-precision training (Micikevicius et al., ICLR 2018, section 3.2).

The loss is multiplied by a scale S before backward so that small gradients land in fp16's normal range
(fp16 flushes magnitudes below 2^-24 ≈ 6e-8 to zero); the gradients are divided by S again, in fp32, before the
optimizer uses them. Dynamic scaling adapts S: an overflow (any inf/NaN gradient) skips the step and backs S off,
a run of clean steps grows it.
"""
import math

__all__ = ["LossScaler"]


def _positive_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class LossScaler:
    """A loss scale S, static or dynamic.

    Dynamic rule, applied after each step by ``update(found_inf)``:
      found_inf:  S ← max(S · backoff_factor, min_scale), the step is skipped, the clean-step count restarts;
      clean step: count += 1; when count == growth_interval: S ← min(S · growth_factor, max_scale), count ← 0.
    A static scaler (``dynamic=False``) keeps S; overflowing steps are still skipped.
    """

    def __init__(self, init_scale: float = 2.0**16, *, dynamic: bool = True, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, min_scale: float = 1.0,
                 max_scale: float = 2.0**24):
        self.dynamic = bool(dynamic)
        self.growth_factor = _positive_finite("growth_factor", growth_factor)
        self.backoff_factor = _positive_finite("backoff_factor", backoff_factor)
        self.min_scale = _positive_finite("min_scale", min_scale)
        self.max_scale = _positive_finite("max_scale", max_scale)
        scale = _positive_finite("init_scale", init_scale)
        if self.growth_factor <= 1.0:
            raise ValueError(f"growth_factor: expected > 1, got {growth_factor!r}")
        if self.backoff_factor >= 1.0:
            raise ValueError(f"backoff_factor: expected in (0, 1), got {backoff_factor!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"growth_interval: expected an int >= 1, got {growth_interval!r}")
        self.growth_interval = growth_interval
        if self.dynamic and not self.min_scale <= scale <= self.max_scale:
            raise ValueError(f"init_scale: expected within [min_scale={self.min_scale}, max_scale={self.max_scale}], "
                             f"got {scale}")
        self.scale = scale  # S, a Python float: the wrapper syncs once per step anyway, so it lives on the host
        self.clean_steps = 0  # clean steps since the last change of S

    @property
    def at_floor(self) -> bool:
        return self.dynamic and self.scale <= self.min_scale

    def update(self, found_inf: bool) -> None:
        """Apply the dynamic rule for one step (a no-op for a static scaler)."""
        if not self.dynamic:
            return
        if found_inf:
            self.scale = max(self.scale * self.backoff_factor, self.min_scale)
            self.clean_steps = 0
            return
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            self.scale = min(self.scale * self.growth_factor, self.max_scale)
            self.clean_steps = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "clean_steps": self.clean_steps, "dynamic": self.dynamic,
                "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "min_scale": self.min_scale, "max_scale": self.max_scale}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.state_dict()) - set(state)
        if missing:
            raise ValueError(f"state: loss-scaler state lacks {sorted(missing)}")
        self.__init__(state["scale"], dynamic=state["dynamic"], growth_factor=state["growth_factor"],
                      backoff_factor=state["backoff_factor"], growth_interval=state["growth_interval"],
                      min_scale=state["min_scale"], max_scale=state["max_scale"])
        self.clean_steps = int(state["clean_steps"])

    def __repr__(self) -> str:
        kind = "dynamic" if self.dynamic else "static"
        return f"LossScaler({kind}, scale={self.scale:g}, clean_steps={self.clean_steps})"
