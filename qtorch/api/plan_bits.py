"""plan_bits: mixed-precision quantization — a bit width (scheme) per layer under an average-bits budget.

1. Sensitivity: for every eligible layer i and candidate scheme c, quantize only that layer, run the model on
   `inputs` and measure the output's noise ratio e_ic = ‖y − ŷ‖² / ‖y‖² (SQNR = −10 log10 e_ic). Candidate None
   keeps the layer float (e = 0, bits = the float weight's bits).
2. Cost: b_ic = 8 · QuantLinear.weight_bytes (everything stored: payload, scales, zero points, codebooks, ...).
3. Choice: minimise Σ_i e_ic (noise ratios of small independent errors add, to first order) subject to
   Σ_i b_ic ≤ budget · Σ_i n_i, n_i the layer's weight count — a multiple-choice knapsack, solved exactly by dynamic
   programming over the budget cut into U units (costs rounded up, so the budget always holds; U ≥ 100 per layer,
   so rounding wastes at most ~1% of it).
Layers that are skipped (filter_fn / skip / min_features, as in quantize_) stay float and are not in the budget.
Candidates per method: a config is quantized round-to-nearest; GPTQCandidate(config) takes the layer's weights from
GPTQ of that format on the Hessian of the layer's float inputs over the calibration `batches` (one pass of them for
all layers), so the sensitivity is the one of the weights GPTQ produces, not of round-to-nearest. quantize_plan_ (qtorch.algorithms)
then quantizes each layer by its planned method. AWQ is a float-equivalent rescaling with its own per-layer choice
(α = 0: none, searched on calibration data): run awq_ before plan_bits to plan on the scaled model.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from qtorch.api._batches import ErrorSum, float_leaves, run_model
from qtorch.api.layers import (check_model, check_selection_args, linear_sites, skip_reason, tied_owners,
                               unwrap_compiled)
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig, W8A8StaticConfig, check_config
from qtorch.nn.base import QuantLinear

DEFAULT_CANDIDATES = (GroupWeightOnlyConfig(bits=4, group_size=128), Int8WeightOnlyConfig(), None)


@dataclass(frozen=True)
class GPTQCandidate:
    """A plan_bits candidate: group-int weights of `config` calibrated by GPTQ (instead of round-to-nearest)."""

    config: GroupWeightOnlyConfig

    def __post_init__(self):
        if not isinstance(self.config, GroupWeightOnlyConfig):
            raise TypeError(f"config: expected a GroupWeightOnlyConfig (GPTQ makes group-int weights), got "
                            f"{type(self.config).__name__}")


@dataclass(frozen=True)
class LayerOption:
    config: object  # a scheme config, or None (float)
    bits_per_weight: float
    sqnr_db: float


@dataclass(frozen=True)
class LayerPlan:
    name: str
    n_weights: int
    options: tuple[LayerOption, ...]  # the candidates this layer can take
    chosen: int  # index into options


@dataclass(frozen=True)
class BitPlan(PerLayerConfig):
    """A PerLayerConfig (pass it to quantize_) with the measurements behind it."""

    budget_bits_per_weight: float = 0.0
    avg_bits_per_weight: float = 0.0
    plan: tuple[LayerPlan, ...] = field(default_factory=tuple)

    gptq_layers: frozenset = frozenset()  # layers planned with a GPTQCandidate (quantize_plan_ runs GPTQ on them)

    def table(self) -> str:
        width = max([len("layer")] + [len(p.name) for p in self.plan])
        lines = [f"plan_bits: {self.avg_bits_per_weight:.3f} bits/weight (budget {self.budget_bits_per_weight:g})",
                 f"{'layer':<{width}}  {'weights':>10}  chosen (bits/w, SQNR dB) | other candidates"]
        for p in self.plan:
            def fmt(o):
                cfg = o.config.config if isinstance(o.config, GPTQCandidate) else o.config
                name = "float" if cfg is None else f"{cfg.scheme}/{getattr(cfg, 'bits', 8)}b"
                name += f"/g{cfg.group_size}" if isinstance(cfg, GroupWeightOnlyConfig) else ""
                name += " GPTQ" if isinstance(o.config, GPTQCandidate) else ""
                return f"{name} ({o.bits_per_weight:.2f}, {o.sqnr_db:.1f})"
            others = ", ".join(fmt(o) for i, o in enumerate(p.options) if i != p.chosen)
            lines.append(f"{p.name:<{width}}  {p.n_weights:>10,}  {fmt(p.options[p.chosen])} | {others}")
        return "\n".join(lines)


def _swap(sites, new):
    for s in sites:
        s.replace(new)


def _layer_hessians(model, batches, names) -> dict:
    """{layer: H = (2/n) Σ x xᵀ} of the inputs each layer of `names` sees in the float model, from one pass."""
    from qtorch.algorithms.sequential import collect_hessians

    layers = [(n, m) for n, m in model.named_modules() if n in names]
    accumulators, _ = collect_hessians(model, "", layers, batches, run_model)  # "": until the whole model has run
    return {n: acc.hessian for n, acc in accumulators.items()}


def _gptq_weights(model, hessians, candidate: GPTQCandidate) -> dict:
    """{layer: GroupQuantizedWeight}: GPTQ of candidate.config for each layer alone (float inputs: the trial that
    measures it quantizes only that layer), for the layers whose input width the group size divides."""
    from qtorch.algorithms.gptq import gptq_quantize_weight

    cfg = candidate.config
    linears = dict(model.named_modules())
    return {n: gptq_quantize_weight(linears[n].weight, h, bits=cfg.bits, group_size=cfg.group_size,
                                    symmetric=cfg.symmetric, act_order=True)
            for n, h in hessians.items() if linears[n].in_features % cfg.group_size == 0}


def _measure(model, sites, linear, config, inputs, ref, gptq=None) -> tuple[float, float]:
    """(bits per weight, output noise ratio) with only this layer quantized by config (by GPTQ: its weights from
    `gptq`, {layer: GroupQuantizedWeight}); None if it cannot be."""
    if config is None:
        return 8.0 * linear.weight.element_size(), 0.0
    if isinstance(config, GPTQCandidate):
        result = gptq.get(sites[0].name)
        if result is None:  # the group size does not divide in_features
            return None
        qlinear = QuantLinear.from_quantized(config.config, bias=None if linear.bias is None else linear.bias.detach(),
                                             weight_dtype=linear.weight.dtype, q=result.q, scale=result.scale,
                                             zero_point=result.zero_point)
    else:
        try:
            qlinear = QuantLinear.from_float(linear, config)
        except ValueError:  # e.g. in_features not divisible by the candidate's group size
            return None
    _swap(sites, qlinear)
    try:
        if isinstance(config, W8A8StaticConfig):
            qlinear.start_calibration()
            run_model(model, inputs)
            qlinear.finish_calibration()
        err = ErrorSum()
        for r, o in zip(ref, float_leaves(run_model(model, inputs))):
            err.add(r, o)
    finally:
        _swap(sites, linear)
    return qlinear.bits_per_weight, err.noise_ratio


def _knapsack(errors: list[list[float]], costs: list[list[float]], capacity: float) -> list[int] | None:
    """argmin Σ errors[i][c_i] s.t. Σ costs[i][c_i] ≤ capacity, exact DP on ceil-rounded costs; None if infeasible."""
    n_layers = len(errors)
    units = max(10_000, 100 * n_layers)
    dp = torch.full((units + 1,), math.inf, dtype=torch.float64)  # dp[u]: least error at exactly u units used
    dp[0] = 0.0
    choice = torch.zeros(n_layers, units + 1, dtype=torch.int16)
    unit_costs = [[math.ceil(c * units / capacity) for c in row] for row in costs]
    for i in range(n_layers):
        new = torch.full_like(dp, math.inf)
        for c, (e, u) in enumerate(zip(errors[i], unit_costs[i])):
            if u > units:
                continue
            shifted = torch.full_like(dp, math.inf)
            shifted[u:] = dp[: units + 1 - u] + e
            better = shifted < new
            new = torch.where(better, shifted, new)
            choice[i] = torch.where(better, torch.tensor(c, dtype=torch.int16), choice[i])
        dp = new
    if not math.isfinite(float(dp.min())):
        return None
    u = int(torch.argmin(dp))  # first minimum: the cheapest of the least-error plans
    picks = [0] * n_layers
    for i in reversed(range(n_layers)):
        picks[i] = int(choice[i, u])
        u -= unit_costs[i][picks[i]]
    return picks


def _infeasible_message(budget, layer_sites, options, costs, candidates) -> str:
    """Why no plan fits: the least achievable average, and the layers whose cheapest usable candidate is above the
    budget (largest excess weight count × bits first), with the candidates that could not hold them."""
    total_weights = sum(s[0].module.weight.numel() for s in layer_sites)
    least = sum(min(row) for row in costs) / total_weights
    over = []
    for sites, row, cost in zip(layer_sites, options, costs):
        n = sites[0].module.weight.numel()
        cheapest = min(cost) / n
        if cheapest > budget:
            usable = [c for c, _, _ in row]
            unusable = [c for c in candidates if c not in usable]
            why = f"; cannot take {', '.join(map(repr, unusable))}" if unusable else ""
            over.append(((cheapest - budget) * n, sites[0].name, f"{sites[0].name} (in_features="
                         f"{sites[0].module.in_features}: at least {cheapest:.2f} bits/weight{why})"))
    over.sort(key=lambda item: -item[0])
    forced = "; ".join(text for _, _, text in over[:3]) + (f" and {len(over) - 3} more" if len(over) > 3 else "")
    if len(over) == len(layer_sites) and len({min(c) / s[0].module.weight.numel() for s, c in
                                                zip(layer_sites, costs)}) == 1:
        hint = " Every layer needs at least that much: raise the budget or add a cheaper candidate."
    elif over:
        names = [name for _, name, _ in over]
        hint = (f" Layers above the budget: {forced}. Leave them float with skip={names!r} or add a cheaper "
                "candidate that fits them.")
    else:
        hint = ""
    return (f"budget_bits_per_weight: {budget} is below the least achievable {least:.3f} bits per weight with these "
            f"candidates.{hint}")


@torch.no_grad()
def plan_bits(model: nn.Module, inputs, budget_bits_per_weight: float, candidates=DEFAULT_CANDIDATES, *,
              batches=None, filter_fn=None, skip=(), min_features: int = 0, progress: bool = True) -> BitPlan:
    """Pick a scheme per layer from `candidates` (configs, GPTQCandidate(config); None = keep float) with an average
    of at most `budget_bits_per_weight` stored bits per weight and the least total output error on `inputs` (one
    batch: a tensor, a tuple/list of positional arguments or a dict). batches: the calibration batches GPTQ
    candidates are calibrated on (needed with a GPTQCandidate; without padding tokens). The model is left unchanged.
    Returns a BitPlan, a PerLayerConfig (print plan.table() to see the choices): quantize_ accepts it
    (round-to-nearest everywhere); qtorch.algorithms.quantize_plan_ runs GPTQ on the layers planned with it."""
    if isinstance(budget_bits_per_weight, bool) or not isinstance(budget_bits_per_weight, (int, float)) \
            or not budget_bits_per_weight > 0:
        raise ValueError(f"budget_bits_per_weight: expected a number > 0, got {budget_bits_per_weight!r}")
    candidates = tuple(candidates)
    if not candidates:
        raise ValueError("candidates: expected at least one config (or None for float)")
    for i, c in enumerate(candidates):
        if not isinstance(c, GPTQCandidate):
            check_config(f"candidates[{i}]", c, allow_none=True)
    if batches is None and any(isinstance(c, GPTQCandidate) for c in candidates):
        raise ValueError("batches: GPTQ candidates need calibration batches (plan_bits(..., batches=...))")
    skip = check_selection_args(filter_fn, skip, min_features)
    check_model(model)
    model = unwrap_compiled(model)  # the trials run the uncompiled model (no recompilation per trial)
    owners = tied_owners(model)
    groups: dict[int, list] = {}  # id(nn.Linear) -> its sites (a module placed twice is planned once)
    for site in linear_sites(model):
        if id(site.module) in groups:
            groups[id(site.module)].append(site)
        elif skip_reason(site, owners, filter_fn, skip, min_features) is None:
            groups[id(site.module)] = [site]
    if not groups:
        raise ValueError("model: no nn.Linear layer to plan (all skipped or none present)")
    ref = float_leaves(run_model(model, inputs))
    layer_sites = list(groups.values())
    gptq_candidates = [c for c in candidates if isinstance(c, GPTQCandidate)]
    hessians = _layer_hessians(model, batches, {s[0].name for s in layer_sites}) if gptq_candidates else {}
    gptq = {c: _gptq_weights(model, hessians, c) for c in gptq_candidates}
    errors, costs, options = [], [], []
    bar = tqdm(total=len(layer_sites) * len(candidates), desc="plan_bits", unit="trial", disable=not progress)
    for sites in layer_sites:
        linear = sites[0].module
        n = linear.weight.numel()
        row = []
        for config in candidates:
            measured = _measure(model, sites, linear, config, inputs, ref, gptq.get(config))
            bar.update(1)
            if measured is not None:
                row.append((config, *measured))
        if not row:
            raise ValueError(f"candidates: none applies to {sites[0].name} (in_features={linear.in_features}); "
                             "add None (keep float) or a scheme without groups")
        options.append(row)
        errors.append([e for _, _, e in row])
        costs.append([bits * n for _, bits, _ in row])
    bar.close()
    total_weights = sum(s[0].module.weight.numel() for s in layer_sites)
    picks = _knapsack(errors, costs, budget_bits_per_weight * total_weights)
    if picks is None:
        raise ValueError(_infeasible_message(budget_bits_per_weight, layer_sites, options, costs, candidates))
    layers, plan, gptq_layers = {}, [], set()
    for sites, row, pick in zip(layer_sites, options, picks):
        chosen = row[pick][0]
        for s in sites:
            layers[s.name] = chosen.config if isinstance(chosen, GPTQCandidate) else chosen
            if isinstance(chosen, GPTQCandidate):
                gptq_layers.add(s.name)
        opts = tuple(LayerOption(c, bits, math.inf if e == 0 else -10.0 * math.log10(e)) for c, bits, e in row)
        plan.append(LayerPlan(sites[0].name, sites[0].module.weight.numel(), opts, pick))
    avg = sum(costs[i][p] for i, p in enumerate(picks)) / total_weights
    return BitPlan(layers, None, budget_bits_per_weight, avg, tuple(plan), frozenset(gptq_layers))
