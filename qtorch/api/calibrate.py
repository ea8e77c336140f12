"""calibrate: run calibration batches through a model so its static W8A8 layers learn their activation ranges."""
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from qtorch.api._batches import run_model
from qtorch.nn.w8a8_static import W8A8StaticLinear


def calibrate(model: nn.Module, batches, progress: bool = True) -> list[str]:
    """Observe every W8A8StaticConfig layer's input (and output, for output="int8") over `batches`, then fix each
    layer's (S_X, Z_X) (and (S_Y, Z_Y)) from its observer. Re-calibrating starts from fresh observers.

    batches: an iterable of batches; each is a tensor (model(batch)), a tuple/list (model(*batch)) or a dict
    (model(**batch)). Runs under torch.no_grad with a tqdm progress bar. Returns the calibrated layers' names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, W8A8StaticLinear)]
    if not layers:
        raise ValueError("model: has no W8A8StaticConfig layers to calibrate (quantize_ it with W8A8StaticConfig)")
    for _, layer in layers:
        layer.start_calibration()
    try:
        count = 0
        with torch.no_grad():
            for batch in tqdm(batches, desc="calibrate", unit="batch", disable=not progress):
                run_model(model, batch)
                count += 1
        if count == 0:
            raise ValueError("batches: no batch to calibrate with")
        unseen = [name for name, layer in layers if layer.observers[0].batches == 0]
        if unseen:
            raise ValueError(f"batches: these layers saw no data during calibration: {', '.join(unseen)}")
        for _, layer in layers:
            layer.finish_calibration()
    finally:
        for _, layer in layers:
            layer.observing, layer.observers = False, None
    return [name for name, _ in layers]
