#!/usr/bin/env bash
# qtorch.analysis on the GPU: the CUDA FLOP / memory tests, then the memory_check benchmark (predicted vs measured
# peak memory of a mixed-precision training step and of quantized inference), which writes its records to
# benchmarks/results/<gpu>.json. Run from anywhere; extra arguments go to bench_memory.py (e.g. --only train).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -m pytest -q -s tests/test_analysis_gpu.py
python benchmarks/bench_memory.py "$@"
