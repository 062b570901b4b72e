"""How much a bundle's answer depends on the item's orientation, and what averaging the 8 buys.

    .venv/bin/python benchmarks/orientation_views.py BUNDLE:DATA [BUNDLE:DATA ...] [--out FILE]

For each bundle (trained by `inspection train` on DATA, so it has torch weights), on the validation
and test splits of DATA: top-1 accuracy of the model shown each of the item's 8 orientations alone
(4 quarter turns, each also mirrored), and of the mean of their probabilities (what a bundle with
`orientation_average` serves). Evidence for the default recipe's orientation average (README,
Training recipe).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from inspection.backends.torch_backend import load_backbone
from inspection.backends.torch_model import InspectionClassifier, orientation_probabilities
from inspection.bundle import load_bundle
from inspection.cli import run_guarded
from inspection.errors import ConfigError
from training.dataset_index import index_dataset
from training.evaluate import label_indices, load_prepared
from training.versions import library_versions, machine_description
from training.bench.result_file import write_result

VIEW_NAMES = ("upright", "mirrored top-bottom", "mirrored left-right", "turned 180", "transposed", "turned 90 anticlockwise",
              "turned 90 clockwise", "anti-transposed")


def view_probabilities(classifier: torch.nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """(8, N, classes): probabilities of each orientation of each image, in dihedral_views' order."""
    with torch.no_grad():
        chunks = [orientation_probabilities(classifier, torch.from_numpy(images[start:start + batch]))
                  for start in range(0, len(images), batch)]
    return torch.cat(chunks, dim=1).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="BUNDLE:DATA")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/orientation_views_cpu.json"))
    args = parser.parse_args()
    results = {}
    for run in args.runs:
        path, _, data = run.partition(":")
        if not data:
            raise ConfigError(f"'{run}' names no dataset. Pass each bundle as BUNDLE:DATA, the folder it was trained on.")
        index = index_dataset(Path(data), progress=False)
        bundle = load_bundle(path)
        meta = bundle.meta
        classifier = InspectionClassifier(load_backbone(bundle), meta.input).eval()
        splits = {}
        for split in ("val", "test"):
            entries = index.split(split)
            labels = label_indices(entries, meta.class_names)
            views = view_probabilities(classifier, load_prepared(index.root, entries, meta.input))
            accuracy = [float((v.argmax(1) == labels).mean()) for v in views]
            splits[split] = {"n": len(entries), "accuracy_per_orientation": dict(zip(VIEW_NAMES, accuracy)),
                             "accuracy_of_the_average": float((views.mean(0).argmax(1) == labels).mean())}
        training = meta.recipe.get("training", {})
        results[path] = {"data": data, "orientation_average_served": meta.orientation_average, "epochs_run": training.get("epochs_run"),
                         "dataset_hash": meta.dataset.get("dataset_hash"), **splits}
        print(path, {s: (round(min(r["accuracy_per_orientation"].values()), 3), round(max(r["accuracy_per_orientation"].values()), 3),
                         round(r["accuracy_of_the_average"], 3)) for s, r in splits.items()}, flush=True)
    write_result(args.out, {"machine": machine_description(), "versions": library_versions(), "bundles": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_guarded(main))
