#!/usr/bin/env bash
# One device call for the whole project (the GPU entry point; it calls gpu_int8_gemm.sh for the harness stages):
# build qtorch (with qtorch._C) once, then run the chosen stages under a global deadline, logs under $OUT, a short
# summary last.
#   bash benchmarks/gpu_session.sh STAGE...      stages:
#     build      pip install --no-build-isolation --no-deps -e . (in the background; later stages wait for it)
#     harness    int8 GEMM torch-free harness: bit-exact checks of every kernel configuration + timings
#     sanitize   compute-sanitizer memcheck + racecheck of the int8 GEMM harness
#     tests      the whole GPU suite (benchmarks/run_gpu_tests.py: pytest -m cuda, one process per file, 4 at once)
#                -> benchmarks/results/h200_tests.json, the record that gates landing (tests/test_gpu_record.py)
#     int8       benchmarks/bench_int8_gemm.py            triton   benchmarks/bench_group_quant.py
#     sweep      benchmarks/bench_int8_gemm.py --sweep-plans (int8 tiles / split-K at M = 32..512; act-quant at small M)
#     mixed      benchmarks/bench_mixed_gemm.py (weight-only records -> $OUT/mixed.json)
#     mixed_tune benchmarks/bench_mixed_gemm.py --variants 0,9,13-15 --splits 1,2,4 (every mixed-input variant and the
#                warpgroup kernel's K split forced, at TUNE_MS; TUNE_VARIANTS overrides the list)
#     amp        benchmarks/bench_amp.py                  memory   benchmarks/bench_memory.py
#     models     benchmarks/bench_models.py
#     eager      benchmarks/bench_eager_overhead.py --device cuda --decode (eager per-call time of every scheme vs
#                nn.Linear at M = 1, eager 7B-shaped decode b1 / b16 vs bf16)
#     diag       which bad-argument errors of the int8 ops crash, with cuda-gdb's backtrace (tools/diag_bad_args.py)
#     profile    ncu (SpeedOfLight, memory, occupancy, warp states) of one autotuned call per PROFILE_CASES case
#                (benchmarks/tools/profile_kernels.py)
# Env: TEST_FILES / TEST_LIMIT (the test files, default all with cuda tests; the seconds the whole suite may take), DEADLINE (seconds from start, default 540: the call's limit is 600 s and a stage is cut only at its own
# limit), QTORCH_COMMIT (the commit measured; .git does not travel). What comes back ($OUT) is refreshed after every
# stage, so a call cut short still returns the summary, the logs and the results of the stages that finished.
set -u -o pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
DEADLINE=${DEADLINE:-540}
FINAL_OUT=${OUT:-/tmp/qtorch_gpu_out}  # what comes back: summary.txt, logs.tar.gz, the results JSON
OUT=$(mktemp -d /tmp/qtorch_gpu_work.XXXX)
mkdir -p "$FINAL_OUT"
export COMMIT=${QTORCH_COMMIT:-unknown} QTORCH_COMMIT=${QTORCH_COMMIT:-unknown} PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl > "$OUT/wheels.log" 2>&1 \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
note() { echo "[$((SECONDS - START))s] $*" | tee -a "$SUMMARY"; }
left() { echo $((DEADLINE - (SECONDS - START))); }
run() {  # run NAME LIMIT CMD...: run under min(LIMIT, time left), log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t=$(left); [ "$t" -lt "$limit" ] && limit=$t
  if [ "$limit" -lt 20 ]; then note "$name: skipped (deadline)"; return 1; fi
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc ($((SECONDS - START))s)"
  return $rc
}
flush_out() {  # summary, logs and results so far -> $FINAL_OUT
  cp benchmarks/results/*.json "$FINAL_OUT/" 2> /dev/null
  cp "$SUMMARY" "$FINAL_OUT/summary.txt"
  tar -czf "$FINAL_OUT/logs.tar.gz" -C "$OUT" . 2> /dev/null
}
wait_build() {
  [ -n "${BUILD_PID:-}" ] && { wait "$BUILD_PID"; note "build: exit $? ; $(tail -1 "$OUT/build.log" | cut -c1-150)"; BUILD_PID=; }
  python3 -c "import qtorch, qtorch.ops; print('cuda kernels:', qtorch.cuda_kernels_available())" 2>&1 | tail -1 | tee -a "$SUMMARY"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee -a "$SUMMARY"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$SUMMARY"

for stage in "$@"; do
  case "$stage" in
    build)
      (MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1) &
      BUILD_PID=$! ;;
    harness)
      run harness 330 env OUT="$OUT/int8" bash benchmarks/gpu_int8_gemm.sh harness
      sed -n '/^---- summary/,$p' "$OUT/harness.log" | tail -60 >> "$SUMMARY" ;;
    sanitize_bg)  # correctness only: runs on the GPU beside the build and the tests, never beside a benchmark
      (timeout 240 env OUT="$OUT/int8" bash benchmarks/gpu_int8_gemm.sh sanitize > "$OUT/sanitize.log" 2>&1) &
      SANITIZE_PID=$! ;;
    sanitize_wait)
      [ -n "${SANITIZE_PID:-}" ] && { wait "$SANITIZE_PID"; note "sanitize: exit $?"; SANITIZE_PID=; }
      grep -E "memcheck|racecheck|FAIL|hazard|Invalid" "$OUT/sanitize.log" | tail -8 >> "$SUMMARY" ;;
    sanitize)
      run sanitize 240 env OUT="$OUT/int8" bash benchmarks/gpu_int8_gemm.sh sanitize
      grep -E "memcheck|racecheck|FAIL|hazard|Invalid" "$OUT/harness.log" "$OUT/sanitize.log" 2>/dev/null | tail -8 >> "$SUMMARY" ;;
    tests)
      wait_build
      # the runner's own deadline ends it (and writes the record) before run's timeout would kill it
      t=$(left); [ "$t" -gt "${TEST_LIMIT:-480}" ] && t=${TEST_LIMIT:-480}
      run tests "$t" python3 benchmarks/run_gpu_tests.py --timeout 300 --deadline "$((t - 20))" --log-dir "$OUT/tests" \
        ${TEST_FILES:-}
      tail -25 "$OUT/tests.log" >> "$SUMMARY" ;;
    int8)
      wait_build; run int8 420 python3 benchmarks/bench_int8_gemm.py ${INT8_ARGS:-}
      sed -n '/^== summary/,$p' "$OUT/int8.log" | tail -40 >> "$SUMMARY" ;;
    sweep)  # tooling for the int8 plan table: every tile / split-K forced at M = 32..512, act-quant overhead
      wait_build; run sweep 240 python3 benchmarks/bench_int8_gemm.py --sweep-plans
      sed -n '/^== plan sweep summary/,$p' "$OUT/sweep.log" | tail -40 >> "$SUMMARY" ;;
    mixed)
      wait_build; run mixed 420 python3 benchmarks/bench_mixed_gemm.py --out "$FINAL_OUT/mixed.json" ${MIXED_ARGS:-}
      tail -70 "$OUT/mixed.log" >> "$SUMMARY" ;;
    mixed_tune)
      wait_build
      run mixed_tune 300 python3 benchmarks/bench_mixed_gemm.py --variants "${TUNE_VARIANTS:-0,9,13-15}" --splits 1,2,4 \
        --ms "${TUNE_MS:-16,64,128,256,512,1024}"
      grep -v "^variant" "$OUT/mixed_tune.log" | tail -40 >> "$SUMMARY" ;;
    triton)  # needs no qtorch._C: runs beside the build
      run triton 330 python3 benchmarks/bench_group_quant.py ${TRITON_ARGS:-}
      sed -n '/^== group_quant/,$p' "$OUT/triton.log" | tail -90 >> "$SUMMARY" ;;
    amp)
      wait_build; run amp 240 python3 benchmarks/bench_amp.py --results-dir benchmarks/results --out "$OUT/amp_train.json" ${AMP_ARGS:-}
      tail -15 "$OUT/amp.log" >> "$SUMMARY" ;;
    memory)
      wait_build; run memory 300 python3 benchmarks/bench_memory.py ${MEMORY_ARGS:-}
      tail -20 "$OUT/memory.log" >> "$SUMMARY" ;;
    models)
      wait_build; run models 420 python3 benchmarks/bench_models.py ${MODELS_ARGS:-}
      tail -30 "$OUT/models.log" >> "$SUMMARY" ;;
    eager)
      wait_build; run eager 300 python3 benchmarks/bench_eager_overhead.py --device cuda --decode ${EAGER_ARGS:-}
      grep -E "us/call|tok/s" "$OUT/eager.log" | tail -40 >> "$SUMMARY" ;;
    diag)
      wait_build; run diag 150 python3 benchmarks/tools/diag_bad_args.py --gdb
      tail -45 "$OUT/diag.log" >> "$SUMMARY" ;;
    profile)
      wait_build
      run profile 240 ncu --profile-from-start off --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
        python3 benchmarks/tools/profile_kernels.py ${PROFILE_CASES:-}
      grep -E "\->|_kernel|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Block Size|Grid Size|Stall|One or More|No Eligible|Compute \(SM\)" "$OUT/profile.log" | head -80 >> "$SUMMARY" ;;
    *) note "unknown stage $stage" ;;
  esac
  flush_out
done
echo "======== summary"
cat "$SUMMARY"
