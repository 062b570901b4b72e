"""Compare bundles on a large held-out set the models never saw: accuracy, how well the defect
score separates good from defective items, and the false reject rate that separation allows.

A 315-image test split has 45 good items and 270 defective ones, so its false reject rate moves by
2 points per item and its calibrated threshold rests on the one or two hardest defective items.
A fresh set from the generator (another seed) measures the same bundles with less noise.
Each bundle's confusion matrix on the set is written as a PNG beside the JSON (OUT_<bundle>_confusion.png).

    .venv/bin/inspection data make datasets/heldout-640x480-seed77.yaml   # or heldout-seed77.yaml for 224x224 bundles
    .venv/bin/python benchmarks/heldout_eval.py datasets/generated/heldout-640x480-seed77 BUNDLE... [--out benchmarks/results/heldout_640x480_cpu.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspection.cli import run_guarded  # noqa: E402
from inspection.decision import defect_scores  # noqa: E402
from training.bench.result_file import write_result  # noqa: E402
from training.calibration import calibrate_policy  # noqa: E402
from training.evaluate import evaluate_bundle  # noqa: E402
from training.report import write_confusion_png  # noqa: E402
from training.versions import library_versions, machine_description  # noqa: E402

ESCAPE_RATE_TARGET = 0.005


def bundle_on_heldout(bundle_path: Path, data: Path, confusion_png: Path) -> dict:
    bundle, evaluation, selection = evaluate_bundle(bundle_path, data, split="all", progress=False)
    write_confusion_png(evaluation.metrics["confusion"], list(bundle.meta.policy.good_classes), confusion_png)
    policy, metrics = bundle.meta.policy, evaluation.metrics
    scores = defect_scores(evaluation.probabilities, policy)
    defective = ~policy.good_mask[evaluation.y_true]
    good_scores, defective_scores = scores[~defective], scores[defective]
    # The threshold this set itself would calibrate to the escape target: what the separation allows.
    _, best = calibrate_policy(evaluation.probabilities, evaluation.y_true, policy, ESCAPE_RATE_TARGET)
    confusion = metrics["confusion"]
    labels, matrix = confusion["labels"], confusion["matrix"]
    errors = {f"{labels[i]}->{labels[j]}": count for i, row in enumerate(matrix) for j, count in enumerate(row) if i != j and count}
    return {
        "bundle": str(bundle_path),
        "recipe": {k: v for k, v in bundle.meta.recipe.items() if k != "training"},
        "item_crop_fraction": bundle.meta.input.item_crop_fraction,
        "images": int(len(scores)),
        "accuracy": round(metrics["accuracy"], 4),
        "escape_rate_at_bundle_threshold": round(metrics["escape_rate"], 5),
        "false_reject_rate_at_bundle_threshold": round(metrics["false_reject_rate"], 4),
        # P(a good item scores below a defective one): the ranking the threshold cuts.
        "auroc_good_vs_defective": round(float((good_scores[:, None] < defective_scores[None, :]).mean()), 5),
        "false_reject_rate_at_best_threshold_for_0.5pct_escapes": round(best["validation_false_rejects"] / best["validation_good_items"], 4),
        "errors": dict(sorted(errors.items(), key=lambda item: -item[1])),
        "confusion_png": confusion_png.name,
        "backend": selection["backend"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/heldout_640x480_cpu.json"))
    args = parser.parse_args()
    rows = []
    for bundle in args.bundles:
        rows.append(bundle_on_heldout(bundle, args.data, args.out.with_name(f"{args.out.stem}_{bundle.name}_confusion.png")))
        print({k: rows[-1][k] for k in ("bundle", "accuracy", "false_reject_rate_at_bundle_threshold", "auroc_good_vs_defective")})
    write_result(args.out, {"data": str(args.data), "machine": machine_description(), "versions": library_versions(), "bundles": rows})
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
