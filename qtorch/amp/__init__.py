"""Mixed-precision training: half-precision weights and activations, fp32 masters, loss scaling, fp32 islands."""
from qtorch.amp.fp32_modules import DEFAULT_FP32_MODULES
from qtorch.amp.loss_scaler import LossScaler
from qtorch.amp.wrapper import MixedPrecision

__all__ = ["DEFAULT_FP32_MODULES", "LossScaler", "MixedPrecision"]
