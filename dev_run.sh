#!/usr/bin/env bash
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl > /dev/null 2>&1 && export PYTHONPATH=$PYTHONPATH:/tmp/site
timeout 400 python3 benchmarks/bench_models.py --schemes w4a16,w8a8 --no-accuracy > $OUT/models.log 2>&1
echo "models rc=$?"
cp benchmarks/results/h200.json $OUT/h200.json
tail -30 $OUT/models.log
