"""Per-rank peak memory of one data-parallel training step: DDP, ZeRO-1, ZeRO-2 (FSDP2 ``fully_shard`` with
reshard_after_forward=False), ZeRO-3 (FSDP2 ``fully_shard``, reshard_after_forward=True), over G ranks.

The single-GPU replay of ``training_step_peak`` (each rank runs it on its own batch) is split into what scales with
the half gradients, with the fp32 master gradients and with the optimizer temporaries (by replaying with those widths
set to 0), then each part is sharded as the stage does and the communication buffers are added:

  stage  weights at rest    grads   masters, states, master grads, optimizer temporaries  communication buffers
  0      full               full    full                                                  DDP buckets: N·g (a copy of
                                                                                          the gradients)
  1      full               full    /G                                                    -
  2      /G (full in fwd+bwd)  /G   /G                                                    + one unit's unsharded grads
  3      /G                 /G      /G                                                    + root unit's weights, 2
                                                                                          layers' gathered weights and
                                                                                          unsharded grads
Assumptions (FSDP2 as qtorch's benchmarks apply it): one FSDP unit per transformer layer, the root unit holds the
embedding, the final norm and the LM head (FSDP2 keeps the root unsharded from forward to the end of backward and
reduce-scatters its gradients last); one layer is prefetched ahead in forward and backward (2 layers gathered);
stage 2 holds every layer's full weights from the end of forward into backward (counted for all of forward and
backward: exact at the loss, where the step peaks); ZeRO-1's gradients are all-reduced in place (no buckets).
With G = 1 every stage is the single-GPU replay.
"""
from dataclasses import replace

from qtorch.analysis.config import ModelConfig
from qtorch.analysis.memory import ZERO_STAGES, get_recipe
from qtorch.analysis.params import layer_param_counts, param_counts
from qtorch.analysis.peak import PeakMemory, training_step_peak

__all__ = ["sharded_training_peak"]


def _check_stage(zero, gpus):
    if zero not in ZERO_STAGES:
        raise ValueError(f"zero: expected a ZeRO stage in {ZERO_STAGES}, got {zero!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus: expected an int >= 1, got {gpus!r}")


def sharded_training_peak(cfg: ModelConfig, batch: int, seq: int, recipe="amp-bf16", optimizer="adam",
                          optimizer_impl: str = "fused", checkpointing: str = "none", zero: int = 0, gpus: int = 1,
                          attention: str = "flash", norm_impl: str = "fp32-upcast") -> PeakMemory:
    """Peak bytes on one of ``gpus`` ranks of a training step over ``batch`` sequences per rank (module docstring)."""
    _check_stage(zero, gpus)
    rec = get_recipe(recipe)
    no_grads = replace(rec, grad_bytes=0, master_grad_bytes=0)
    no_master_grads = replace(rec, master_grad_bytes=0)
    common = dict(cfg=cfg, batch=batch, seq=seq, optimizer=optimizer, checkpointing=checkpointing,
                  attention=attention, norm_impl=norm_impl)
    full = training_step_peak(recipe=rec, optimizer_impl=optimizer_impl, **common)
    fused = training_step_peak(recipe=rec, optimizer_impl="fused", **common)
    half_only = training_step_peak(recipe=no_master_grads, optimizer_impl="fused", **common)
    base = training_step_peak(recipe=no_grads, optimizer_impl="fused", **common)

    g = 1 / gpus
    shard_states = g if zero >= 1 else 1.0
    shard_grads = g if zero >= 2 else 1.0
    static = {"weights": full.static["weights"] * (g if zero >= 2 else 1.0),
              "masters": full.static["masters"] * shard_states,
              "optimizer_states": full.static["optimizer_states"] * shard_states,
              "buffers": full.static["buffers"]}
    counts, per_layer = param_counts(cfg), layer_param_counts(cfg)
    n_params, layer_params = sum(counts.values()), sum(per_layer.values())
    root_params = n_params - cfg.n_layers * layer_params  # embedding, final norm, head
    w, gb = rec.weight_bytes, rec.grad_bytes
    if zero == 0 and gpus > 1:
        static["ddp_buckets"] = n_params * gb
    gathered = {2: n_params * w * (1 - g),
                3: (root_params + 2 * layer_params) * w * (1 - g)}.get(zero, 0)
    unsharded_grads = {2: layer_params * gb * (1 - g),
                       3: (root_params + 2 * layer_params) * gb * (1 - g)}.get(zero, 0)
    static_single, static_rank = sum(full.static.values()), sum(static.values())

    timeline = []
    for (event, live), (_, live_fused), (_, live_half), (_, live_base) in zip(
            full.timeline, fused.timeline, half_only.timeline, base.timeline):
        rank_live = (live_base - static_single + static_rank
                     + (live_half - live_base) * shard_grads  # half gradients
                     + (live_fused - live_half) * shard_states  # fp32 master gradients
                     + (live - live_fused) * shard_states)  # optimizer temporaries
        if event.startswith(("forward", "backward")):
            rank_live += gathered
        if event.startswith("backward"):
            rank_live += unsharded_grads
        timeline.append((event, round(rank_live)))
    event, peak = max(timeline, key=lambda e: e[1])
    return PeakMemory(peak, event, {k: round(v) for k, v in static.items()}, tuple(timeline))
