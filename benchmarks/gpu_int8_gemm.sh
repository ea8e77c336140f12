#!/usr/bin/env bash
# GPU run of the int8 GEMM (issue 4), one command on the H200:
#   benchmarks/gpu_int8_gemm.sh [harness|python|all]      (default: all)
# harness: builds the torch-free harness (benchmarks/int8_gemm_harness.cu + csrc/int8_gemm, parallel nvcc), runs the
#          bit-exact checks of every kernel configuration, compute-sanitizer memcheck and racecheck on tiny shapes, and
#          the CUDA-graph timings (8192^3, 4096^3, LLaMA-2-7B shapes).                       ~5-6 min on an H200
# python:  builds the package if qtorch._C is missing (pip install --no-build-isolation --no-deps -e .), runs
#          pytest -m cuda tests/test_int8_gemm_cuda.py and benchmarks/bench_int8_gemm.py (writes
#          benchmarks/results/h200.json; torchao from .whl/ when carried).                  ~6-8 min (torchao compiles)
# Logs go to $OUT (or /tmp/qtorch_int8_gpu_out): summary.txt (the short table, also printed last), logs.tar.gz (every log),
# harness_bench.json, h200.json. Carry .whl for torchao: run(carry=[".whl"]).
set -u -o pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
OUT=${OUT:-/tmp/qtorch_int8_gpu_out}
LOG=$(mktemp -d /tmp/qtorch_int8_logs.XXXX)
BUILD=/tmp/qtorch_int8_build
mkdir -p "$OUT" "$BUILD"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
PY=${PYTHON:-python3}
NVCC=${NVCC:-nvcc}
command -v "$NVCC" > /dev/null || NVCC=/usr/local/cuda/bin/nvcc
SANITIZER=${SANITIZER:-compute-sanitizer}
command -v "$SANITIZER" > /dev/null || SANITIZER=/usr/local/cuda/bin/compute-sanitizer

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
  --format=csv > "$LOG/gpu.txt" 2>&1
note "== $(tail -1 "$LOG/gpu.txt")"

run_harness() {
  local flags="-O3 -std=c++17 -Icsrc -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80"
  flags="$flags -Xcompiler -ffp-contract=off -lineinfo"
  local t0=$SECONDS pids=() f
  for f in benchmarks/int8_gemm_harness.cu csrc/int8_gemm/*.cu csrc/int8_gemm/*.cpp; do
    "$NVCC" $flags -Xptxas -v -c "$f" -o "$BUILD/$(basename "$f").o" > "$LOG/build_$(basename "$f").log" 2>&1 &
    pids+=($!)
  done
  local failed=0 p
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  if [ $failed = 1 ] || ! "$NVCC" $flags "$BUILD"/*.o -o "$BUILD/harness" > "$LOG/build_link.log" 2>&1; then
    note "HARNESS BUILD FAILED (logs: build_*.log)"
    grep -h -B2 -A6 "error" "$LOG"/build_*.log | head -40 | tee -a "$SUMMARY"
    return 1
  fi
  note "harness built in $((SECONDS - t0)) s; ptxas: $(grep -h 'spill' "$LOG"/build_*.log | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"

  timeout 420 "$BUILD/harness" check > "$LOG/harness_check.log" 2>&1
  note "harness check (exit $?): $(grep 'CHECK SUMMARY' "$LOG/harness_check.log" || tail -3 "$LOG/harness_check.log")"
  grep -E "^FAIL|FATAL" "$LOG/harness_check.log" | head -20 | tee -a "$SUMMARY"

  timeout 240 "$SANITIZER" --tool memcheck --error-exitcode 9 "$BUILD/harness" sanitize > "$LOG/memcheck.log" 2>&1
  note "memcheck (exit $?): $(grep -E 'ERROR SUMMARY|CHECK SUMMARY' "$LOG/memcheck.log" | tr '\n' ' ')"
  HARNESS_CONFIGS=sm90_128x256,sm90_64x256/sk2,sm90_128x128/sk4,sm90pp_128x128,sm90pp_64x256,sm80_128x128,gemv16,gemv32 \
    timeout 300 "$SANITIZER" --tool racecheck --racecheck-report all --error-exitcode 9 "$BUILD/harness" sanitize \
    > "$LOG/racecheck.log" 2>&1
  note "racecheck (exit $?): $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|CHECK SUMMARY' "$LOG/racecheck.log" | tr '\n' ' ')"

  timeout 400 "$BUILD/harness" bench "$OUT/harness_bench.json" > "$LOG/harness_bench.log" 2>&1
  note "harness bench (exit $?):"
  grep -E "device copy" "$LOG/harness_bench.log" | tee -a "$SUMMARY"
  sed -n '/^shape (M N K)/,$p' "$LOG/harness_bench.log" | tee -a "$SUMMARY"
}

run_python() {
  if ! $PY -c "import qtorch.ops, qtorch._C" > /dev/null 2>&1; then
    local t0=$SECONDS
    MAX_JOBS=${MAX_JOBS:-16} $PY -m pip install --no-build-isolation --no-deps -e . > "$LOG/pip_build.log" 2>&1
    note "package build (exit $?) in $((SECONDS - t0)) s"
  fi
  $PY -c "import qtorch.ops, qtorch._C; print('qtorch._C loaded')" 2>&1 | tail -1 | tee -a "$SUMMARY"
  if ls .whl/torchao-*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/torchao-*.whl > "$LOG/torchao_install.log" 2>&1 \
      && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  timeout 300 $PY -m pytest -m cuda tests/test_int8_gemm_cuda.py -q -x -p no:cacheprovider > "$LOG/pytest.log" 2>&1
  note "pytest (exit $?): $(tail -1 "$LOG/pytest.log")"
  grep -E "^(FAILED|ERROR)" "$LOG/pytest.log" | head -10 | tee -a "$SUMMARY"
  PYTHONUNBUFFERED=1 timeout 480 $PY benchmarks/bench_int8_gemm.py > "$LOG/bench_py.log" 2>&1
  note "bench_int8_gemm.py (exit $?):"
  cp benchmarks/results/h200.json "$OUT/h200.json" 2> /dev/null
  sed -n '/^== summary/,$p' "$LOG/bench_py.log" | tee -a "$SUMMARY"
  tail -5 "$LOG/bench_py.log" | grep -iE "error|traceback" | tee -a "$SUMMARY"
}

case "$STAGE" in
  harness) run_harness ;;
  python) run_python ;;
  all) run_harness; run_python ;;
  *) echo "usage: $0 [harness|python|all]"; exit 2 ;;
esac
tar -czf "$OUT/logs.tar.gz" -C "$LOG" . 2> /dev/null
echo "---- summary ($OUT/summary.txt; every log in $OUT/logs.tar.gz)"
cat "$SUMMARY"
