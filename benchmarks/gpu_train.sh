#!/usr/bin/env bash
# Training on a lent GPU machine (no network, its own torch): checks the CUDA path (AMP, channels_last)
# and measures how far the default recipe goes when compute is not the limit.
# Usage there: bash benchmarks/gpu_train.sh   (wheels for packages it lacks are carried in .whl/)
set -uo pipefail
out="${OUT:-/tmp/gpu-out}"
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0)); print('onnxruntime', onnxruntime.__version__)"
    nproc
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
python3 -m inspection.cli data synth /tmp/syn300 --count 300 --seed 1 --json > /dev/null || exit 1
# The default recipe, exactly as on the CPU, but on CUDA.
python3 -m inspection.cli train /tmp/syn300 --out /tmp/gpu_default --device cuda --json > "$out/gpu_default.json" 2> "$out/gpu_default.log"
echo "default recipe: rc=$?"; tail -c 1500 "$out/gpu_default.json"
# The same recipe with 3x the epochs: is the CPU result limited by compute or by the recipe?
python3 -m inspection.cli train /tmp/syn300 --out /tmp/gpu_120 --device cuda --epochs 120 --json > "$out/gpu_120_epochs.json" 2> "$out/gpu_120_epochs.log"
echo "120 epochs: rc=$?"; tail -c 1500 "$out/gpu_120_epochs.json"
cp /tmp/gpu_120/bundle.json "$out/gpu_120_epochs_bundle.json" 2>/dev/null
cp /tmp/gpu_default/bundle.json "$out/gpu_default_bundle.json" 2>/dev/null
