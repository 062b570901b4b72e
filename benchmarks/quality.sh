#!/usr/bin/env bash
# The default recipe against issue 2's quality bars, on this machine's CPU:
# synthetic data (2,100 images, 300 per class, seed 1) of one product and of mixed products,
# and the real ../shared/datasets/pill_defects with its group split. About 25 minutes on 2 cores.
# Each result file keeps the one it replaces under "previous".
#   bash benchmarks/quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=benchmarks/results
for product in white-round-scored mixed; do
  .venv/bin/inspection data synth "$work/$product" --count 300 --seed 1 --product "$product" --json > /dev/null
  .venv/bin/inspection train "$work/$product" --out "$work/bundle_$product" --json > "$work/train_$product.json"
  .venv/bin/python -m training.bench.result_file "$work/train_$product.json" "$out/train_synthetic_${product}_cpu.json"
  cp "$work/bundle_$product/report/confusion.png" "$out/train_synthetic_${product}_cpu_confusion.png"
done
.venv/bin/inspection train ../shared/datasets/pill_defects --out "$work/bundle_pill" --json > "$work/train_pill.json"
.venv/bin/python -m training.bench.result_file "$work/train_pill.json" "$out/train_pill_defects_cpu.json"
cp "$work/bundle_pill/report/confusion.png" "$out/train_pill_defects_cpu_confusion.png"
