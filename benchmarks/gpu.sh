#!/usr/bin/env bash
# The GPU set, for a lent GPU machine without network (its own torch; TensorRT when importable).
# Writes everything under $OUT within about 8 minutes:
#   gpu_tests.log            the GPU tests (torch CUDA backend, CUDA graphs, TensorRT when present)
#   bench_gpu.{json,md,png}  inspection bench: torch CUDA (and TensorRT) x precision x batch, station ratio, training
#                            (bench_gpu.partial.json instead, with the rows measured, if its time limit cut it short)
#   station_overhead.json    the station with a free model (benchmarks/station_overhead.py): its ceiling on this host,
#                            frames prepared by 1 or 8 threads, or by 8 processes (frames in place and copied)
#   preparer_handover.json   what handing a frame to a preparer process costs the station process
#   staging_copy.json        the host's copy into staging memory (benchmarks/staging_copy.py), 1 and 4 threads
#   int8_resnet18.json       resnet18 trained here at 224 px for INT8_EPOCHS (default 0: skipped; it ran on the
#                            H100 with 60, results/gpu/h100_int8_resnet18_*.json, and keeps the set in 8 minutes) on one
#                            product (INT8_PRODUCT, default white-round-scored), then `inspection export
#                            --precision int8`: the int8 parity gate on a trained model (its CPU speed is
#                            measured on the 2-core machine by benchmarks/int8_cpu.py; the graph, not the
#                            weights, sets it). 12 epochs on `mixed` (0.78 accuracy) failed the gate: a
#                            weak model's near-ties flip.
#   recipe_probe.jsonl       training-recipe probes (PROBE_EPOCHS, default 0: skipped; 20 is a useful run)
#                            on a synthetic set of PROBE_PRODUCT (default mixed; a product name from
#                            `inspection data synth --help`)
# Python packages the machine lacks travel as wheels in .whl/ (see benchmarks/README.md).
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
cli="python3 -m inspection.cli"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
df -h /dev/shm  # preparer processes keep the line's frames there (the synthetic line's pool: 236 MB)
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/integration/test_gpu_backends.py \
    tests/integration/test_backend_conformance.py tests/integration/test_tensorrt.py 2>&1 | tail -n 15 | tee "$out/gpu_tests.log"
timeout 240 $cli bench --models resnet18,mobilenet_v3_small --backends torch,tensorrt \
    --precisions fp32,fp16 --batch-sizes 1,8,64,256 --budget-s "${BENCH_BUDGET_S:-80}" --station-frames 20000 \
    --cache /tmp/bench-cache --json "$out/bench_gpu.json" 2>&1 | tail -n 3
cat "$out/bench_gpu.md" 2>/dev/null
# The station's own cost per frame with a free model (the bench's resnet18 bundle: 224 px, cropped around the item).
station_bundle=$(ls -d /tmp/bench-cache/resnet18-224-crop* 2>/dev/null | head -n 1)
[ -n "$station_bundle" ] && timeout 150 python3 benchmarks/station_overhead.py "$station_bundle" --frames 20000 \
    --prepare-threads 1,8 --prepare-processes 8 --out "$out/station_overhead.json" 2>&1 | tail -n 12
[ -n "$station_bundle" ] && timeout 40 python3 benchmarks/preparer_handover.py "$station_bundle" \
    --out "$out/preparer_handover.json" 2>&1 | tail -n 2
# The host's staging copy: a 256-frame batch, and a station batch stacked first or straight from shared buffers.
timeout 30 python3 benchmarks/staging_copy.py --out "$out/staging_copy.json" 2>&1 | tail -n 1
synth() {  # synth DIR PRODUCT
    if [ "$2" = mixed ]; then $cli data synth "$1" --count 300 --seed 1 --json > /dev/null
    else $cli data synth "$1" --count 300 --seed 1 --product "$2" --json > /dev/null; fi
}
if [ "${INT8_EPOCHS:-0}" -gt 0 ]; then
    synth /tmp/int8-data "${INT8_PRODUCT:-white-round-scored}" || exit 1
    timeout 200 $cli train /tmp/int8-data --out /tmp/r18 --model resnet18 --image-size 224 --epochs "${INT8_EPOCHS}" \
        --device cuda --json > "$out/int8_resnet18_train.json" 2>/dev/null
    timeout 90 $cli export /tmp/r18 --precision int8 --calib /tmp/int8-data --allow-parity-failure --json > "$out/int8_resnet18.json"
    head -c 1500 "$out/int8_resnet18.json"
fi
if [ "${PROBE_EPOCHS:-0}" -gt 0 ]; then
    [ -d /tmp/probe-data ] || synth /tmp/probe-data "${PROBE_PRODUCT:-mixed}" || exit 1
    timeout 120 python3 benchmarks/gpu_recipe_probe.py /tmp/probe-data "$out/recipe_probe.jsonl" "${PROBE_EPOCHS:-20}" | cut -c1-300
fi
