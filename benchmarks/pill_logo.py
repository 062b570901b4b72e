"""Leave-one-group-out estimate of the default recipe on ../shared/datasets/pill_defects.

The set is 10 capture runs of about 10 physical pills (groups.csv), so one group split tests on one
or two pills and says little. Here every run is held out in turn: a model trained with the default
recipe on the other nine classifies it. No run can be spared for validation, so each fold trains
the recipe's epochs to the end and keeps the last epoch's weight average, as `inspection train` does
when its validation split lacks a class (training.trainer.classes_missing_from).
Accuracy is top-1 (argmax), before any reject-threshold calibration.

    .venv/bin/python benchmarks/pill_logo.py [--epochs N] [--out benchmarks/results/pill_logo_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspection.input_spec import default_input_spec  # noqa: E402
from training.dataset_index import index_dataset  # noqa: E402
from training.evaluate import label_indices, load_prepared  # noqa: E402
from training.pipeline import guess_good_classes  # noqa: E402
from training.recipe import TrainRecipe  # noqa: E402
from training.trainer import LabeledImages, predict_probabilities, train_classifier  # noqa: E402
from training.versions import library_versions, machine_description  # noqa: E402
from inspection.cli import run_guarded  # noqa: E402
from training.bench.result_file import write_result  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pill_defects"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=TrainRecipe().epochs)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pill_logo_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    recipe = TrainRecipe(epochs=args.epochs)
    index = index_dataset(args.data, progress=False)
    spec = default_input_spec(recipe.image_size_px, index.channels, recipe.item_crop_fraction, recipe.shrink)
    images = load_prepared(index.root, list(index.entries), spec)
    labels = label_indices(list(index.entries), index.classes)
    groups = np.array([e.group for e in index.entries])
    no_validation = LabeledImages(images[:0], labels[:0])
    folds = []
    started = time.perf_counter()
    for group in sorted(set(groups)):
        held_out = groups == group
        train = LabeledImages(images[~held_out], labels[~held_out])
        with tempfile.TemporaryDirectory() as checkpoints:
            result = train_classifier(train, no_validation, list(index.classes), spec, recipe, Path(checkpoints),
                                      "pill-logo", progress=False, good_classes=guess_good_classes(index.classes))
        predicted = predict_probabilities(result.classifier, images[held_out], recipe.orientation_average).argmax(1)
        true_label = index.classes[int(labels[held_out][0])]
        fold = {"group": group, "label": true_label, "images": int(held_out.sum()),
                "accuracy": round(float((predicted == labels[held_out]).mean()), 4),
                "train_seconds": round(result.seconds, 1)}
        folds.append(fold)
        print(json.dumps(fold), file=sys.stderr, flush=True)
    correct = sum(f["accuracy"] * f["images"] for f in folds)
    result = {
        "benchmark": "pill_defects leave-one-group-out",
        "machine": machine_description(),
        "versions": library_versions(),
        "recipe": recipe.model_dump(mode="json"),
        "groups": len(folds),
        "accuracy_pooled": round(correct / sum(f["images"] for f in folds), 4),
        "accuracy_mean_over_groups": round(float(np.mean([f["accuracy"] for f in folds])), 4),
        "folds": folds,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
