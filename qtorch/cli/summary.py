"""The analysis summary the demo prints under each model's table (qtorch.analysis: analytic and measured)."""
import torch

from qtorch.cli.table import format_table, human_bytes
from qtorch.eval.evaluate import SchemeResult
from qtorch.eval.schemes import SCHEMES


def _flops(x: float) -> str:
    for scale, unit in ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} FLOP"


@torch.no_grad()
def llama_summary(model, tokens: torch.Tensor, results: list[SchemeResult]) -> str:
    """Parameters and forward FLOPs (analytic vs FlopCounterMode), and the analytic weight bytes of each scheme next
    to the bytes measured on the quantized model."""
    from qtorch.analysis import count_flops, count_params, forward_flops, from_llama_config, linear_weight_bytes

    cfg = from_llama_config(model.config, name="llama")
    batch, seq = tokens.shape
    analytic = forward_flops(cfg, batch, seq)
    measured = count_flops(model, (tokens,), backward=False)
    shapes = [(m.out_features, m.in_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    lines = [f"Analysis (qtorch.analysis): {count_params(cfg) / 1e6:.2f} M parameters "
             f"(module: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M); forward of {batch} x {seq} tokens: "
             f"{_flops(analytic.total)} analytic ({_flops(analytic.matmul_total)} in matmuls), "
             f"{_flops(measured.forward_flops)} counted by FlopCounterMode"]
    rows = []
    for r in results:
        fmt = SCHEMES[r.scheme].weight_format if r.scheme in SCHEMES else None
        if fmt is None:
            continue
        predicted = sum(linear_weight_bytes(n, k, fmt) for n, k in shapes)
        rows.append([r.scheme, fmt, human_bytes(predicted), human_bytes(r.weight_bytes),
                     "yes" if predicted == r.weight_bytes else "NO"])
    if rows:
        lines.append(format_table(["scheme", "analytic format", "predicted bytes", "measured bytes", "equal"], rows))
    return "\n".join(lines)


@torch.no_grad()
def encoder_summary(model, inputs: dict) -> str:
    """Parameters and the forward FLOPs counted by FlopCounterMode on the evaluation batch."""
    from qtorch.analysis import count_flops

    args = (inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
    measured = count_flops(model, args, backward=False)
    n_params = sum(p.numel() for p in model.parameters())
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    batch, seq = inputs["input_ids"].shape
    return (f"Analysis (qtorch.analysis): {n_params / 1e6:.2f} M parameters, {linear / 1e6:.2f} M of them in the "
            f"{sum(isinstance(m, torch.nn.Linear) for m in model.modules())} linear layers quantized; forward of "
            f"{batch} sentences x {seq} tokens (padded): {_flops(measured.forward_flops)} counted by FlopCounterMode")
