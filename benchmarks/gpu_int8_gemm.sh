#!/usr/bin/env bash
# GPU run of the int8 GEMM (issue 4) on the H200:   benchmarks/gpu_int8_gemm.sh [stage ...]   (default: all)
#   harness   build the torch-free harness (benchmarks/int8_gemm_harness.cu + csrc/int8_gemm, parallel nvcc), run the
#             bit-exact checks of every kernel configuration, then the CUDA-graph timings             ~3-4 min
#   sanitize  compute-sanitizer memcheck + racecheck of the harness on tiny shapes (builds it if needed) ~2-4 min
#   test      build the package if qtorch._C is missing, pytest -m cuda tests/test_int8_gemm_cuda.py   ~3-4 min
#   bench     benchmarks/bench_int8_gemm.py (bf16, torch._int_mm, torchao when .whl/ is carried, qtorch raw and
#             end to end); writes benchmarks/results/h200.json; BENCH_ARGS="--quick" or "--no-torchao" to shorten
#                                                                                                   ~5-7 min
#   all       harness sanitize test bench. Each stage fits a 10-minute call alone; suggested calls on the H200:
#             "harness" (~4-6 min), "sanitize test" (~6-8 min), "bench" with .whl carried (~5-7 min; the warm machine
#             keeps the package built by "test"). Short on device time: "harness", then "test bench" with
#             BENCH_ARGS=--quick.
# Output under $OUT (or /tmp/qtorch_int8_gpu_out): summary.txt (the short table, also printed last), logs.tar.gz
# (every log), harness_bench.json, h200.json.
set -u -o pipefail
cd "$(dirname "$0")/.."
STAGES=${*:-all}
[ "$STAGES" = all ] && STAGES="harness sanitize test bench"
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

build_harness() {
  [ -x "$BUILD/harness" ] && return 0
  local flags="-O3 -std=c++17 -Icsrc -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80"
  flags="$flags -Xcompiler -ffp-contract=off -lineinfo"
  local t0=$SECONDS pids=() f failed=0 p
  for f in benchmarks/int8_gemm_harness.cu csrc/int8_gemm/*.cu csrc/int8_gemm/*.cpp csrc/common/tensor_map.cpp; do
    "$NVCC" $flags -Xptxas -v -c "$f" -o "$BUILD/$(basename "$f").o" > "$LOG/build_$(basename "$f").log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  if [ $failed = 1 ] || ! "$NVCC" $flags "$BUILD"/*.o -o "$BUILD/harness" > "$LOG/build_link.log" 2>&1; then
    note "HARNESS BUILD FAILED (logs: build_*.log)"
    grep -h -B2 -A6 "error" "$LOG"/build_*.log | head -40 | tee -a "$SUMMARY"
    rm -f "$BUILD/harness"
    return 1
  fi
  note "harness built in $((SECONDS - t0)) s; ptxas spills: $(grep -h 'spill' "$LOG"/build_*.log | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

stage_harness() {
  build_harness || return 1
  timeout 180 "$BUILD/harness" check > "$LOG/harness_check.log" 2>&1
  note "harness check (exit $?): $(grep 'CHECK SUMMARY' "$LOG/harness_check.log" || tail -3 "$LOG/harness_check.log")"
  grep -E "^FAIL|FATAL|mismatch" "$LOG/harness_check.log" | head -20 | tee -a "$SUMMARY"
  timeout 180 "$BUILD/harness" bench "$OUT/harness_bench.json" > "$LOG/harness_bench.log" 2>&1
  note "harness bench (exit $?):"
  grep -E "device copy|FATAL" "$LOG/harness_bench.log" | tee -a "$SUMMARY"
  sed -n '/^shape (M N K)/,$p' "$LOG/harness_bench.log" | tee -a "$SUMMARY"
}

stage_sanitize() {
  build_harness || return 1
  timeout 150 "$SANITIZER" --tool memcheck --error-exitcode 9 "$BUILD/harness" sanitize > "$LOG/memcheck.log" 2>&1
  note "memcheck (exit $?): $(grep -E 'ERROR SUMMARY|CHECK SUMMARY' "$LOG/memcheck.log" | tr '\n' ' ')"
  grep -m 10 -E "Invalid|out of bounds|FAIL" "$LOG/memcheck.log" | tee -a "$SUMMARY"
  HARNESS_CONFIGS=sm90_128x256,sm90_64x256/sk2,sm90pp_64x256,sm80_128x128,gemv16 HARNESS_SHAPES="17,272,1040" \
    timeout 180 "$SANITIZER" --tool racecheck --racecheck-report all --error-exitcode 9 "$BUILD/harness" sanitize \
    > "$LOG/racecheck.log" 2>&1
  note "racecheck (exit $?): $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|CHECK SUMMARY' "$LOG/racecheck.log" | tr '\n' ' ')"
  grep -m 10 -E "hazard|Race|FAIL" "$LOG/racecheck.log" | tee -a "$SUMMARY"
}

build_package() {
  $PY -c "import qtorch.ops, qtorch._C" > /dev/null 2>&1 && return 0
  local t0=$SECONDS
  MAX_JOBS=${MAX_JOBS:-16} $PY -m pip install --no-build-isolation --no-deps -e . > "$LOG/pip_build.log" 2>&1
  note "package build (exit $?) in $((SECONDS - t0)) s"
  $PY -c "import qtorch.ops, qtorch._C; print('qtorch._C loaded')" 2>&1 | tail -1 | tee -a "$SUMMARY"
}

stage_test() {
  build_package
  timeout 300 $PY -m pytest -m cuda tests/test_int8_gemm_cuda.py -q -p no:cacheprovider > "$LOG/pytest.log" 2>&1
  note "pytest (exit $?): $(tail -1 "$LOG/pytest.log")"
  grep -E "^(FAILED|ERROR)" "$LOG/pytest.log" | head -15 | tee -a "$SUMMARY"
}

stage_bench() {
  build_package
  if ls .whl/torchao-*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/torchao-*.whl > "$LOG/torchao_install.log" 2>&1 \
      && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  PYTHONUNBUFFERED=1 timeout 480 $PY benchmarks/bench_int8_gemm.py ${BENCH_ARGS:-} > "$LOG/bench_py.log" 2>&1
  note "bench_int8_gemm.py (exit $?):"
  cp benchmarks/results/h200.json "$OUT/h200.json" 2> /dev/null
  sed -n '/^== summary/,$p' "$LOG/bench_py.log" | tee -a "$SUMMARY"
  grep -E "Error|Traceback|torchao not available" "$LOG/bench_py.log" | head -5 | tee -a "$SUMMARY"
}

for stage in $STAGES; do
  case "$stage" in
    harness) stage_harness ;;
    sanitize) stage_sanitize ;;
    test) stage_test ;;
    bench) stage_bench ;;
    *) echo "unknown stage '$stage' (harness | sanitize | test | bench | all)"; exit 2 ;;
  esac
done
tar -czf "$OUT/logs.tar.gz" -C "$LOG" . 2> /dev/null
echo "---- summary ($OUT/summary.txt; every log in $OUT/logs.tar.gz)"
cat "$SUMMARY"
