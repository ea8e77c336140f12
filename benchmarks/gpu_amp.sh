#!/usr/bin/env bash
# The mixed-precision training benchmark (issue 6) on the GPU machine, in one command from the repository root:
#
#   bash benchmarks/gpu_amp.sh                     # eager: fp32, fp32+TF32, torch.amp fp16/bf16, qtorch fp16/bf16
#   AMP_COMPILE=torch_amp,qtorch_fp16 bash benchmarks/gpu_amp.sh   # plus those impls compiled (+1-2 min each)
#
# Writes under $OUT (default /tmp/amp_out): test_amp_cuda.log, bench_amp.log, amp_train.json (this run's records
# and per-step losses),
# results/<gpu>.json (benchmarks/results/<gpu>.json with this benchmark's records replaced: copy it back).
# The table printed last is the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/amp_out}
mkdir -p "$OUT/results"
cp benchmarks/results/*.json "$OUT/results/" 2>/dev/null || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export COMMIT
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
# The wrapper's CUDA tests first (~20 s): fused multi-tensor paths, fused AdamW, memory accounting, skipped steps.
python -m pytest -q -p no:cacheprovider tests/test_amp_cuda.py 2>&1 | tee "$OUT/test_amp_cuda.log" | tail -n 15 \
    || echo "amp CUDA tests could not run"
python benchmarks/bench_amp.py --results-dir "$OUT/results" --out "$OUT/amp_train.json" \
    --compile-impls "${AMP_COMPILE:-}" 2>&1 | tee "$OUT/bench_amp.log"
