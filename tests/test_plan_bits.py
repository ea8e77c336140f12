"""plan_bits: per-layer sensitivity, then the least-error choice of schemes under an average-bits budget."""
import copy
import itertools
import math
import random

import pytest
import torch
import torch.nn as nn

import qtorch
from qtorch.api.plan_bits import BitPlan, _knapsack
from qtorch.config import GroupWeightOnlyConfig, Int8WeightOnlyConfig, PerLayerConfig, W8A8StaticConfig
from qtorch.nn import QuantLinear

INT4 = GroupWeightOnlyConfig(bits=4, group_size=32)  # 4 + (32 + 8) / 32 = 5.25 bits per weight
INT8 = Int8WeightOnlyConfig()  # 8 + (32 + 8) / 64 = 8.625 bits per weight at in_features 64
HEAVY = 2  # the layer with outlier weights: int4 hurts it most


def mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)])
    with torch.no_grad():  # one weight 12x larger in every group of 32: the int4 step crushes the other 31
        w = model[HEAVY].weight.view(64, 2, 32)
        w[:, :, 0] *= 12
    return model


def plan_error(plan: BitPlan) -> float:
    return sum(10 ** (-p.options[p.chosen].sqnr_db / 10) for p in plan.plan)


def test_budget_for_one_int8_layer_goes_to_the_most_sensitive():
    model = mlp()
    x = torch.randn(32, 64)
    budget = (3 * 5.25 + 8.625) / 4 + 0.05
    plan = qtorch.plan_bits(model, x, budget, candidates=(INT4, INT8), progress=False)
    assert isinstance(plan, PerLayerConfig)
    assert plan.config_for(str(HEAVY)) == INT8
    assert [plan.config_for(str(i)) for i in range(4)].count(INT8) == 1
    assert plan.avg_bits_per_weight == pytest.approx((3 * 5.25 + 8.625) / 4) and plan.avg_bits_per_weight <= budget
    # the choice is the exact optimum of the measured errors: check every combination
    best = math.inf
    for combo in itertools.product(range(2), repeat=4):
        bits = sum(plan.plan[i].options[c].bits_per_weight for i, c in enumerate(combo)) / 4
        if bits <= budget:
            best = min(best, sum(10 ** (-plan.plan[i].options[c].sqnr_db / 10) for i, c in enumerate(combo)))
    assert plan_error(plan) == pytest.approx(best)
    assert "plan_bits:" in plan.table() and "int8_weight_only" in plan.table()


def test_plan_is_accepted_by_quantize_and_its_bits_hold():
    model = mlp()
    x = torch.randn(32, 64)
    before = [id(m) for m in model]
    ref = model(x).detach()
    plan = qtorch.plan_bits(model, x, 7.0, candidates=(INT4, INT8), progress=False)
    assert [id(m) for m in model] == before and all(type(m) is nn.Linear for m in model)  # model left unchanged
    assert torch.equal(model(x).detach(), ref)
    qtorch.quantize_(model, plan)
    stored_bits = sum(8 * m.weight_bytes for m in model) / sum(m.in_features * m.out_features for m in model)
    assert stored_bits == pytest.approx(plan.avg_bits_per_weight) and stored_bits <= 7.0
    more = qtorch.plan_bits(mlp(), x, 8.7, candidates=(INT4, INT8), progress=False)
    assert plan_error(more) < plan_error(plan)  # more bits, less error


def test_float_candidate_and_budget_errors():
    model = mlp()
    x = torch.randn(16, 64)
    plan = qtorch.plan_bits(model, x, (32 + 3 * 5.25) / 4 + 0.01, candidates=(INT4, None), progress=False)
    assert [plan.config_for(str(i)) for i in range(4)] == [INT4, INT4, None, INT4]
    with pytest.raises(ValueError, match="below the least achievable 5.250 bits per weight"):
        qtorch.plan_bits(model, x, 5.0, candidates=(INT4, INT8), progress=False)
    with pytest.raises(ValueError, match="budget_bits_per_weight"):
        qtorch.plan_bits(model, x, 0)
    with pytest.raises(TypeError, match=r"candidates\[1\]"):
        qtorch.plan_bits(model, x, 6.0, candidates=(INT4, 8))
    with pytest.raises(ValueError, match="none applies to 0"):
        qtorch.plan_bits(nn.Sequential(nn.Linear(48, 8)), torch.randn(2, 48), 9.0, candidates=(INT4,),
                         progress=False)


def test_static_candidates_shared_layers_and_skips():
    layer = nn.Linear(64, 64)
    model = nn.Sequential(layer, nn.ReLU(), layer, nn.Linear(64, 8))
    x = torch.randn(16, 64)
    plan = qtorch.plan_bits(model, x, 9.0, candidates=(INT4, W8A8StaticConfig()), skip=("3",), progress=False)
    assert [p.name for p in plan.plan] == ["0"]  # the shared layer once; "3" skipped
    assert plan.config_for("0") == plan.config_for("2") and plan.config_for("3") is None
    assert all(math.isfinite(o.sqnr_db) for o in plan.plan[0].options)
    summary = qtorch.quantize_(model, plan)
    assert model[0] is model[2] and isinstance(model[0], QuantLinear) and type(model[3]) is nn.Linear
    if isinstance(model[0].config, W8A8StaticConfig):
        qtorch.calibrate(model, [x], progress=False)
    assert model(x).shape == (16, 8) and summary.converted == ["0", "2"]


def test_knapsack_is_exact_against_brute_force():
    rng = random.Random(0)
    capacity = 5000  # the DP's 10 000 units make these integer costs exact
    for _ in range(20):
        n_layers, n_choices = rng.randint(1, 5), rng.randint(1, 3)
        errors = [[rng.random() for _ in range(n_choices)] for _ in range(n_layers)]
        costs = [[rng.randint(1, 3000) for _ in range(n_choices)] for _ in range(n_layers)]

        def cost(combo):
            return sum(costs[i][c] for i, c in enumerate(combo))

        def error(combo):
            return sum(errors[i][c] for i, c in enumerate(combo))

        feasible = [c for c in itertools.product(range(n_choices), repeat=n_layers) if cost(c) <= capacity]
        picks = _knapsack(errors, costs, capacity)
        if not feasible:
            assert picks is None
            continue
        assert cost(picks) <= capacity
        assert error(picks) == pytest.approx(min(error(c) for c in feasible))


def correlated(n: int, k: int = 64, seed: int = 0) -> torch.Tensor:
    """(n, k) inputs with a few dominant directions: where GPTQ beats round-to-nearest."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen) @ torch.randn(6, k, generator=gen) + 0.05 * torch.randn(n, k, generator=gen)
    return x * torch.exp(torch.randn(k, generator=gen))


def test_gptq_candidates_measure_gptq_weights_and_quantize_plan_applies_them():
    model = mlp()
    batches = [correlated(128, seed=s) for s in range(2)]
    x = batches[0]
    gptq4 = qtorch.GPTQCandidate(INT4)
    plan = qtorch.plan_bits(model, x, 6.0, candidates=(INT4, gptq4, INT8), batches=batches, progress=False)
    for p in plan.plan:  # GPTQ's layer error on its own calibration data is below round-to-nearest's
        rtn, gptq = p.options[0], p.options[1]
        assert gptq.config == gptq4 and gptq.bits_per_weight == rtn.bits_per_weight
        assert gptq.sqnr_db > rtn.sqnr_db + 1.0, p
    assert plan.gptq_layers == {p.name for p in plan.plan if p.options[p.chosen].config == gptq4}
    assert plan.gptq_layers and all(plan.config_for(n) == INT4 for n in plan.gptq_layers)
    assert "GPTQ" in plan.table()
    ref = model(x).detach()
    quant = copy.deepcopy(model)
    summary = qtorch.quantize_plan_(quant, plan, batches, progress=False)
    assert sorted(summary.converted) == ["0", "1", "2", "3"]
    assert [quant[i].config for i in range(4)] == [plan.config_for(str(i)) for i in range(4)]
    stored = sum(8 * m.weight_bytes for m in quant) / sum(m.in_features * m.out_features for m in quant)
    assert stored == pytest.approx(plan.avg_bits_per_weight) and stored <= 6.0
    rtn_model = copy.deepcopy(model)
    qtorch.quantize_(rtn_model, plan)  # the same formats, every layer round-to-nearest
    assert torch.linalg.norm(quant(x) - ref) < torch.linalg.norm(rtn_model(x) - ref)
    with pytest.raises(ValueError, match="batches"):
        qtorch.plan_bits(model, x, 6.0, candidates=(gptq4,), progress=False)
    with pytest.raises(TypeError, match="GroupWeightOnlyConfig"):
        qtorch.GPTQCandidate(INT8)
    with pytest.raises(TypeError, match="BitPlan"):
        qtorch.quantize_plan_(quant, PerLayerConfig({}), batches)
