"""memory_check: predicted (qtorch.analysis) vs measured peak memory of
  - a training step of the LLaMA-style model with qtorch.amp.MixedPrecision (bf16, fp32 masters, AdamW) and a
    plain fp32 baseline, at batch sizes that put the peak at the loss (logits) or at the optimizer step, with and
    without layer-boundary activation checkpointing;
  - inference of a quantized model (qtorch.quantize_: W8A8 dynamic, int8 weight-only, int4 group-128) beside bf16:
    a prefill forward, and one decode step with a KV cache.
Measured: torch.cuda.memory_stats()["allocated_bytes.all.peak"] over one call after warm-up (the tensor-tracking
estimate of qtorch.analysis.measure_memory is recorded beside it). Target: |predicted - measured| / measured < 10%.

    python benchmarks/bench_memory.py            # CUDA: writes benchmarks/results/<gpu>.json (memory_check records)
    python benchmarks/bench_memory.py --smoke    # tiny shapes on any device (CPU: tensor tracking), writes nothing
"""
import argparse
import copy
import gc
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import qtorch  # noqa: E402
from qtorch.amp import MixedPrecision  # noqa: E402
from qtorch.analysis import from_llama_config, inference_peak, measure_memory, training_step_peak  # noqa: E402
from qtorch.models import build_llama  # noqa: E402
from records import merge_records, results_path, run_meta  # noqa: E402

TARGET = 0.10  # the acceptance bound on |relative error|

# (impl, recipe, batch, seq, optimizer_impl, checkpointing): the model is TRAIN_MODEL
TRAIN_CASES = [
    ("qtorch_amp_bf16", "amp-bf16", 8, 1024, "fused", "none"),  # peak at the loss: fp32 logits and their grads
    ("qtorch_amp_bf16", "amp-bf16", 1, 1024, "foreach", "none"),  # peak in the optimizer step (fp32 master grads)
    ("qtorch_amp_bf16_ckpt", "amp-bf16", 8, 1024, "fused", "layer"),
    ("fp32", "fp32", 4, 1024, "fused", "none"),
]
TRAIN_MODEL = ("llama-200m", {})
# (impl, qtorch config name or None for bf16, weight format for the prediction)
INFER_CASES = [
    ("bf16", None, "bf16"),
    ("qtorch_w8a8", "W8A8DynamicConfig", "w8a8"),
    ("qtorch_w8a16", "Int8WeightOnlyConfig", "int8-weight-only"),
    ("qtorch_w4a16", "GroupWeightOnlyConfig", "int4-g128"),
]
INFER_MODEL = ("llama2-7b-shaped", {"n_layers": 8})  # 1.88 B parameters: weights dominate, as in deployment
INFER_SHAPE = {"prefill": (1, 2048), "decode": (1, 4096)}  # decode: (batch, KV-cache length), one new token

SMOKE = {"train_model": ("tiny", {}), "train_shapes": {8: 2, 1: 1}, "seq": 32,
         "infer_model": ("tiny", {}), "prefill": (1, 64), "decode": (1, 128)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _layer_checkpointing(model):
    """Wrap every transformer layer in torch.utils.checkpoint (activations kept at layer boundaries)."""
    for layer in model.layers:
        forward = layer.forward
        layer.forward = lambda *args, _f=forward: checkpoint(_f, *args, use_reentrant=False)


def train_case(device, model_spec, impl, recipe, batch, seq, optimizer_impl, checkpointing):
    name, overrides = model_spec
    model = build_llama(name, device=device, **overrides).train()
    cfg = from_llama_config(model.config, name=name)
    if checkpointing == "layer":
        _layer_checkpointing(model)
    impl_kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **impl_kwargs[optimizer_impl])
    mixed = MixedPrecision(model, optimizer, dtype=torch.bfloat16) if recipe.startswith("amp") else None
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)
    targets = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)

    def step():
        loss = F.cross_entropy(model(tokens).float().flatten(0, 1), targets.flatten())
        if mixed is not None:
            mixed.backward(loss)
            mixed.step()
        else:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: optimizer state, kernels, allocator
        step()
    _sync(device)
    predicted = training_step_peak(cfg, batch, seq, recipe, "adam", optimizer_impl, checkpointing)
    measured = measure_memory(step, model=model, optimizer=optimizer, device=device)
    params = {"model": name, **overrides, "batch": batch, "seq": seq, "recipe": recipe, "optimizer": "adamw",
              "optimizer_impl": optimizer_impl, "checkpointing": checkpointing, "dtype": "bfloat16"
              if recipe.startswith("amp") else "float32", "case": "train_step"}
    return _record(impl, params, measured, predicted)


def infer_case(device, model_spec, base_model, impl, config_name, weight_format, mode, shape):
    name, overrides = model_spec
    model = copy.deepcopy(base_model).to(device)
    cfg = from_llama_config(model.config, name=name)
    quantize_head = False
    if config_name is not None:
        summary = qtorch.quantize_(model, getattr(qtorch, config_name)())
        quantize_head = "output" in summary.converted
    batch, length = shape
    with torch.inference_mode():
        if mode == "prefill":
            tokens = torch.randint(0, cfg.vocab_size, (batch, length), device=device)

            def call():
                return model(tokens)
            kv_len = 0
        else:
            model.setup_caches(batch, length, dtype=torch.bfloat16, device=device)
            prompt = torch.randint(0, cfg.vocab_size, (batch, 8), device=device)
            model(prompt, torch.arange(8, device=device))
            token = torch.randint(0, cfg.vocab_size, (batch, 1), device=device)
            position = torch.tensor([8], device=device)

            def call():
                return model(token, position)
            kv_len = length
        call()  # warm-up: kernels, autotuning
        _sync(device)
        predicted = inference_peak(cfg, batch, length if mode == "prefill" else 1, weight_format, quantize_head,
                                   kv_cache_len=kv_len)
        measured = measure_memory(call, model=model, device=device)
    params = {"model": name, **overrides, "batch": batch, ("seq" if mode == "prefill" else "kv_cache_len"): length,
              "weight_format": weight_format, "quantize_head": quantize_head, "case": mode, "dtype": "bfloat16",
              "cuda_kernels": qtorch.cuda_kernels_available()}
    return _record(impl, params, measured, predicted)


def _record(impl, params, measured, predicted):
    """predicted_mem_bytes = the analytic prediction (model tensors) + the CUDA library workspaces measured before
    the call (allocator bytes no tensor accounts for: cuBLAS keeps a workspace per thread and stream)."""
    workspace = measured.untracked_start_bytes or 0
    total = predicted.peak + workspace
    return {"benchmark": "memory_check", "impl": impl, "params": params,
            "metrics": {"peak_mem_bytes": measured.peak_bytes, "predicted_mem_bytes": total,
                        "relative_error": round((total - measured.peak_bytes) / measured.peak_bytes, 5),
                        "predicted_model_bytes": predicted.peak, "library_workspace_bytes": workspace,
                        "relative_error_model": round((predicted.peak - (measured.peak_bytes - workspace))
                                                      / (measured.peak_bytes - workspace), 5),
                        "tracked_peak_bytes": measured.tracked_peak_bytes, "predicted_peak_at": predicted.peak_event,
                        "measured_at_peak": measured.by_category}}


def save(records, device):
    """Merge into benchmarks/results/<gpu>.json: replace this run's cases (train_step / prefill / decode) of
    memory_check, keep the other cases (a run with --only train keeps the inference records) and benchmarks."""
    meta = run_meta(device)
    return merge_records(results_path(device), [{**r, **meta} for r in records], by_param="case")


def _row(r) -> str:
    p, m = r["params"], r["metrics"]
    label = f"{r['impl']} {p['case']} b={p['batch']} " + (f"s={p['seq']}" if "seq" in p else f"kv={p['kv_cache_len']}")
    if p["case"] == "train_step":
        label += f" {p['optimizer_impl']}" + (" ckpt" if p["checkpointing"] == "layer" else "")
    flag = "" if abs(m["relative_error"]) < TARGET else "  <-- beyond 10%"
    return (f"{label:<46} {m['peak_mem_bytes'] / 1e6:>12.1f} {m['predicted_mem_bytes'] / 1e6:>13.1f} "
            f"{100 * m['relative_error']:>+7.2f}%  {m['predicted_peak_at']}{flag}")


HEADER = f"{'case':<46} {'measured MB':>12} {'predicted MB':>13} {'error':>8}  predicted peak at"


def print_table(records):
    print("\n".join([HEADER] + [_row(r) for r in records]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any device, nothing written")
    parser.add_argument("--only", choices=("train", "infer"), default=None)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("bench_memory: needs a CUDA GPU (use --smoke for a CPU dry run)", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    records = []
    print(HEADER)
    if args.only in (None, "train"):
        model_spec = SMOKE["train_model"] if args.smoke else TRAIN_MODEL
        for impl, recipe, batch, seq, opt_impl, ckpt in TRAIN_CASES:
            if args.smoke:
                batch, seq = SMOKE["train_shapes"].get(batch, batch), SMOKE["seq"]
            records.append(train_case(device, model_spec, impl, recipe, batch, seq, opt_impl, ckpt))
            _free(device)  # the case's model and optimizer died with its frame
            print(_row(records[-1]), flush=True)
    if args.only in (None, "infer"):
        model_spec = SMOKE["infer_model"] if args.smoke else INFER_MODEL
        name, overrides = model_spec
        base = build_llama(name, dtype=torch.bfloat16, **overrides)  # on the CPU; each case copies it over
        shapes = {"prefill": SMOKE["prefill"], "decode": SMOKE["decode"]} if args.smoke else INFER_SHAPE
        for mode in ("prefill", "decode"):
            for impl, config_name, weight_format in INFER_CASES:
                records.append(infer_case(device, model_spec, base, impl, config_name, weight_format, mode,
                                          shapes[mode]))
                _free(device)
                print(_row(records[-1]), flush=True)
    if not args.smoke:
        print(f"\nwrote {save(records, device)}")
    print()
    print_table(records)
    worst = max(abs(r["metrics"]["relative_error"]) for r in records)
    print(f"\nworst |error| {100 * worst:.2f}% (target < {100 * TARGET:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
