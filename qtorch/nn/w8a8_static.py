"""W8A8 static: int8 weights per channel (symmetric) × int8 activations with one per-tensor (S_X, Z_X) found by
calibration (qtorch.calibrate runs observers, qtorch.observers).

  q_X = clamp(round(x / S_X) + Z_X, −128, 127)                           (fp32 true division, round half to even)
  output="float": y = S_X S_W[n] (Σ_k q_X q_W[n, k] − Z_X Σ_k q_W[n, k]) + b[n]   (qtorch::int8_scaled_mm)
  output="int8":  q_Y = clamp(M0[n]·2^-31·2^-n[n] (Σ_k q_X q_W − Z_X Σ_k q_W + b_q[n]) + Z_Y, −128, 127)
                  with M = S_W S_X / S_Y in fixed point and b_q = round(b / (S_W S_X))  (qtorch::int8_linear_requant,
                  the course's integer-only layer); forward returns S_Y (q_Y − Z_Y), forward_int8 returns q_Y.
Until calibrated, forward raises; while calibrating, it runs in float with the dequantized weight and observes x
(and y for output="int8").
"""
import torch
import torch.nn.functional as F

import qtorch.ops as qops
from qtorch.ops.autograd import straight_through
from qtorch.config import W8A8StaticConfig
from qtorch.nn.base import check_quantized, has_values
from qtorch.nn.w8a8 import W8A8Linear, dequantize_int8_per_channel, int8_weight_buffers
from qtorch.observers import make_observer
from qtorch.quant.affine import dequantize
from qtorch.quant.fixed_point import INT32_MAX, quantize_multiplier


def _act_qparams_buffers(device, x_scale=None, x_zp=None) -> dict:
    scale = torch.ones(1, dtype=torch.float32, device=device) if x_scale is None else x_scale
    zp = torch.zeros(1, dtype=torch.int32, device=device) if x_zp is None else x_zp
    check_quantized("x_scale", scale, (1,), (torch.float32,))
    check_quantized("x_zp", zp, (1,), (torch.int32,))
    return {"x_scale": scale, "x_zp": zp}


class W8A8StaticLinear(W8A8Linear):
    """Static W8A8 (float or int8 output), calibrated before use: the dynamic layer's weights, with activation
    quantization parameters from calibration instead of per token."""

    configs = (W8A8StaticConfig,)

    def __init__(self, config, in_features, out_features, buffers, bias, weight_dtype):
        super().__init__(config, in_features, out_features, buffers, bias, weight_dtype)
        self.observing = False
        self.observers = None  # (x observer, y observer or None) while calibrating
        self.after_load()

    @classmethod
    def build(cls, config, bias, weight_dtype, *, q, scale, x_scale=None, x_zp=None, y_scale=None, y_zp=None):
        """q (N, K) integers in [-128, 127], scale (N,) fp32 > 0; optional activation qparams x_scale (1,) fp32, x_zp (1,) int32 (and for
        output="int8" y_scale, y_zp) make the layer calibrated at once."""
        buffers = int8_weight_buffers(q, scale)
        n, device = q.shape[0], q.device
        given = [v is not None for v in (x_scale, x_zp) + ((y_scale, y_zp) if config.output == "int8" else ())]
        if any(given) and not all(given):
            raise ValueError("x_scale, x_zp (and y_scale, y_zp for output='int8'): give all of them or none")
        if config.output == "float" and (y_scale is not None or y_zp is not None):
            raise ValueError("y_scale, y_zp: only an output='int8' layer has output quantization parameters")
        buffers.update(_act_qparams_buffers(device, x_scale, x_zp))
        if config.output == "int8":
            out = _act_qparams_buffers(device, y_scale, y_zp)
            buffers.update({"y_scale": out["x_scale"], "y_zp": out["x_zp"],
                            "w_zp": torch.zeros(n, dtype=torch.int32, device=device),  # (N,) Z_W = 0
                            "multiplier": torch.zeros(n, dtype=torch.int32, device=device),  # (N,) M0
                            "shift": torch.zeros(n, dtype=torch.int32, device=device)})  # (N,) n
            # (N,) int32 round(b / (S_W S_X)), or None without a bias
            buffers["bias_q"] = None if bias is None else torch.zeros(n, dtype=torch.int32, device=device)
        buffers["calibrated"] = torch.zeros((), dtype=torch.uint8, device=device)
        layer = cls(config, q.shape[1], n, buffers, bias, weight_dtype)
        if all(given) and has_values(q):
            layer.set_activation_qparams(x_scale, x_zp, y_scale, y_zp)
        return layer

    # --- calibration ------------------------------------------------------------------------------------------------
    def start_calibration(self) -> None:
        """Forward runs in float with the dequantized weight and feeds fresh observers."""
        out = make_observer(self.config) if self.config.output == "int8" else None
        self.observers = (make_observer(self.config), out)
        self.observing = True

    def finish_calibration(self) -> None:
        """Turn the observed ranges into (S_X, Z_X) (and (S_Y, Z_Y)) and the integer-output constants."""
        x_obs, y_obs = self.observers
        x_scale, x_zp = x_obs.qparams()
        y_scale, y_zp = y_obs.qparams() if y_obs is not None else (None, None)
        self.observing, self.observers = False, None
        self.set_activation_qparams(x_scale, x_zp, y_scale, y_zp)

    def set_activation_qparams(self, x_scale, x_zp, y_scale=None, y_zp=None) -> None:
        """Install calibrated per-tensor qparams ((1,) fp32 scale, (1,) int32 zero point) and derive the rest."""
        device = self.w_q.device
        self.x_scale = x_scale.to(device=device, dtype=torch.float32).reshape(1)
        self.x_zp = x_zp.to(device=device, dtype=torch.int32).reshape(1)
        if self.config.output == "int8":
            self.y_scale = y_scale.to(device=device, dtype=torch.float32).reshape(1)
            self.y_zp = y_zp.to(device=device, dtype=torch.int32).reshape(1)
            self._prepare_integer_output()
        self.calibrated = torch.ones((), dtype=torch.uint8, device=device)
        self.after_load()

    def _prepare_integer_output(self) -> None:
        """M = S_W S_X / S_Y as (M0, n) per channel; b_q = round(b / (S_W S_X)) in int32 (as prepare_integer_linear)."""
        w_scale = self.w_scale.double()  # (N,)
        x_scale, y_scale = float(self.x_scale), float(self.y_scale)
        multiplier, shift = quantize_multiplier(w_scale * x_scale / y_scale)
        self.multiplier, self.shift = multiplier.to(self.w_q.device), shift.to(self.w_q.device)
        if self.bias is not None:
            bias_q = torch.round(self.bias.double() / (w_scale * x_scale))
            if bool((bias_q.abs() > INT32_MAX).any()):
                raise ValueError("bias: too large to represent in int32 at scale S_W·S_X")
            self.bias_q = bias_q.to(torch.int32)

    def after_load(self) -> None:
        """Mirror the calibration state and the integer zero points (op arguments) as Python values."""
        self.is_calibrated = has_values(self.calibrated) and bool(self.calibrated)
        if self.is_calibrated and self.config.output == "int8":
            self.x_zp_int, self.y_zp_int = int(self.x_zp), int(self.y_zp)

    # --- forward ----------------------------------------------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """q_X = clamp(round(x / S_X) + Z_X, −128, 127) -> int8, same shape as x."""
        x_q, _ = qops.quantize_per_tensor(x.reshape(-1, x.shape[-1]), self.x_scale, self.x_zp)
        return x_q.reshape(x.shape)

    def linear_2d(self, x):
        if self.observing:
            return self._observe(x)
        if not self.is_calibrated:
            raise RuntimeError(f"{type(self).__name__}({self.in_features}, {self.out_features}): not calibrated; "
                               "run qtorch.calibrate(model, batches) first")
        # (M, K) int8; (M,) fp32 S_X, or NaN for a row holding NaN/Inf (its output row comes out NaN)
        x_q, row_scale = qops.quantize_per_tensor(x.detach(), self.x_scale, self.x_zp)
        if self.config.output == "int8":
            y = dequantize(self._requant(x_q), self.y_scale, self.y_zp).to(x.dtype)  # (M, N)
            y = torch.where(torch.isnan(row_scale)[:, None], float("nan"), y)
        else:
            # Z_X (1,): per tensor, read by the kernel as one value
            y = qops.int8_scaled_mm(x_q, row_scale, self.x_zp, self.w_q, self.w_scale, self.w_colsum, None,
                                    self.bias, x.dtype)  # (M, N)
        return straight_through(x, y, self.w_q, self.w_scale)

    def _requant(self, x_q: torch.Tensor) -> torch.Tensor:
        # Z_W = 0 (symmetric weights): no w_zp, so no Σ_k q_X terms
        return qops.int8_linear_requant(x_q, self.x_zp_int, self.w_q, None, self.w_colsum, self.bias_q,
                                        self.multiplier, self.shift, self.y_zp_int)  # (M, N) int8

    def forward_int8(self, x_q: torch.Tensor) -> torch.Tensor:
        """The integer-only layer: q_X (..., K) int8 at (S_X, Z_X) -> q_Y (..., N) int8 at (S_Y, Z_Y)."""
        if self.config.output != "int8":
            raise RuntimeError("forward_int8: this layer was built with output='float'; use "
                               "W8A8StaticConfig(output='int8')")
        if not self.is_calibrated:
            raise RuntimeError("forward_int8: not calibrated; run qtorch.calibrate(model, batches) first")
        if not isinstance(x_q, torch.Tensor) or x_q.dtype != torch.int8:
            raise TypeError(f"x_q: expected an int8 tensor, got {getattr(x_q, 'dtype', type(x_q).__name__)}")
        if x_q.dim() == 0 or x_q.shape[-1] != self.in_features:
            raise ValueError(f"x_q: expected last dimension in_features={self.in_features}, got {tuple(x_q.shape)}")
        q_y = self._requant(x_q.reshape(-1, self.in_features))
        return q_y.reshape(*x_q.shape[:-1], self.out_features)

    def _observe(self, x):
        x_obs, y_obs = self.observers
        x_obs.observe(x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        y = F.linear(x, self.dequantize_weight(x.dtype), bias)
        if y_obs is not None:
            y_obs.observe(y)
        return y

    def dequantize_weight(self, dtype=torch.float32):
        return dequantize_int8_per_channel(self.w_q, self.w_scale, dtype)

    def extra_repr(self):
        return super().extra_repr() + f", calibrated={self.is_calibrated}"
