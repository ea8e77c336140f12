#!/usr/bin/env bash
# GPU run of the Triton kernels: CUDA tests, then the side-by-side benchmark; logs under $OUT, short table last.
#   bash benchmarks/gpu_triton.sh            (needs torchao for the baselines: see below)
# torchao: pip install --no-index --no-deps --target /tmp/site .whl/torchao-*.whl && export PYTHONPATH=/tmp/site
set -uo pipefail
OUT=${OUT:-/tmp/qtorch_out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ! python -c "import torchao" 2>/dev/null; then
  pip install -q --no-index --no-deps --target /tmp/site .whl/torchao-*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
timeout 240 python -m pytest -q -m cuda tests/test_triton_act_quant.py tests/test_triton_group_quant.py \
  tests/test_triton_weight_only.py -x -p no:cacheprovider > "$OUT/triton_pytest.log" 2>&1
echo "pytest rc=$? ($(tail -1 "$OUT/triton_pytest.log"))"
timeout 330 python benchmarks/bench_group_quant.py > "$OUT/bench_group_quant.log" 2>&1
rc=$?
cp benchmarks/results/*.json "$OUT/" 2>/dev/null
echo "bench rc=$rc"
sed -n '/^== group_quant/,$p' "$OUT/bench_group_quant.log" | tail -60
