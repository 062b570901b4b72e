"""Whether augmenting the next batch on a second thread (training.augment.augmented_batches, ahead=True)
pays on this machine: the default recipe's model, input size and batch, trained on the CPU for
--steps steps with the augmentation inline and ahead, alternated over --rounds rounds.

    .venv/bin/python benchmarks/augment_ahead.py [--rounds 3] [--steps 20] [--out benchmarks/results/augment_ahead_cpu.json]

The trainer augments ahead only on a GPU, whose host cores idle while it computes; on a CPU the
model's own threads use every core. This measures the CPU side of that choice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inspection.cli import run_guarded
from inspection.input_spec import default_input_spec
from training.augment import augmented_batches, build_augmentation
from training.bench.result_file import write_or_print
from training.models import build_classifier
from training.recipe import TrainRecipe
from training.versions import library_versions, machine_description


def images_per_s(ahead: bool, images: np.ndarray, labels: np.ndarray, steps: int, recipe: TrainRecipe) -> float:
    spec = default_input_spec(recipe.image_size_px, 3, recipe.item_crop_fraction, recipe.shrink)
    model = build_classifier(recipe.model, 7, spec).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, fused=True)
    rng = np.random.default_rng(0)
    batches = [np.sort(rng.choice(len(images), recipe.batch_size, replace=False)) for _ in range(steps)]
    started = time.perf_counter()
    for index, augmented in augmented_batches(build_augmentation(0), images, batches, ahead=ahead):
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(augmented)), torch.from_numpy(labels[index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * recipe.batch_size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    recipe = TrainRecipe()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (512, recipe.image_size_px, recipe.image_size_px, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, 512)
    measured: dict[str, list[float]] = {"inline": [], "ahead": []}
    for _ in range(args.rounds):
        for name in measured:
            measured[name].append(round(images_per_s(name == "ahead", images, labels, args.steps, recipe), 1))
    result = {"machine": machine_description(), "versions": library_versions(), "torch_threads": torch.get_num_threads(),
              "model": recipe.model, "image_size_px": recipe.image_size_px, "batch_size": recipe.batch_size,
              "steps_per_round": args.steps, "images_per_s": measured,
              "median_images_per_s": {name: statistics.median(values) for name, values in measured.items()}}
    write_or_print(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
