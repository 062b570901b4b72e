#!/usr/bin/env bash
# The GPU set, for a lent GPU machine without network (its own torch; TensorRT when importable).
# Writes everything under $OUT within about 8 minutes:
#   gpu_tests.log        the GPU tests (torch CUDA backend and CUDA graphs against ONNX Runtime)
#   bench_gpu.{json,md,png}   inspection bench: torch CUDA (and TensorRT) x precision x batch, station ratio, training
#   recipe_probe.jsonl   training-recipe probes on the synthetic set (PROBE_EPOCHS, default 20; 0 skips)
# Python packages the machine lacks travel as wheels in .whl/ (see benchmarks/README.md).
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/integration/test_gpu_backends.py tests/integration/test_backend_conformance.py 2>&1 | tail -n 30 | tee "$out/gpu_tests.log"
timeout 250 python3 -m inspection.cli bench --models resnet18,mobilenet_v3_small --backends torch,tensorrt \
    --precisions fp32,fp16 --batch-sizes 1,8,64,256 --budget-s "${BENCH_BUDGET_S:-100}" --station-frames 20000 \
    --cache /tmp/bench-cache --json-out "$out/bench_gpu.json" 2>&1 | tail -n 5
cat "$out/bench_gpu.md" 2>/dev/null
if [ "${PROBE_EPOCHS:-20}" -gt 0 ]; then
    python3 -m inspection.cli data synth /tmp/syn300 --count 300 --seed 1 --json > /dev/null || exit 1
    timeout 160 python3 benchmarks/gpu_recipe_probe.py /tmp/syn300 "$out/recipe_probe.jsonl" "${PROBE_EPOCHS:-20}" | cut -c1-400
fi
