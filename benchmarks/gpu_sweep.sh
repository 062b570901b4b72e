#!/usr/bin/env bash
# Recipe sweep on a lent GPU machine; results in $OUT/sweep.jsonl. See gpu_recipe_sweep.py.
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
python3 -m inspection.cli data synth /tmp/syn300 --count 300 --seed 1 --json > /dev/null || exit 1
python3 benchmarks/gpu_recipe_sweep.py /tmp/syn300 "$out/sweep.jsonl" "${EPOCHS:-25}"
