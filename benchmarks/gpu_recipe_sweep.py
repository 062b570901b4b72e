"""Recipe sweep on a lent GPU: which learning rate / batch size learns the synthetic set fastest?

Runs each variant of the default recipe for a fixed number of epochs without early stopping and
prints one JSON line per variant (validation accuracy per epoch, test metrics). GPU machines only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from training.pipeline import train_bundle
from training.recipe import TrainRecipe

VARIANTS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.01, "batch_size": 64},
    {"learning_rate": 0.001},
]


def main(data: Path, out: Path, epochs: int) -> None:
    for number, variant in enumerate(VARIANTS):
        recipe = TrainRecipe(device="cuda", epochs=epochs, patience_epochs=1000, **variant)
        started = time.perf_counter()
        summary = train_bundle(data, Path(f"/tmp/sweep{number}"), recipe, progress=False)
        meta = json.loads(Path(f"/tmp/sweep{number}/bundle.json").read_text())
        history = meta["recipe"]["training"]["history"]
        line = {
            "variant": variant,
            "epochs": epochs,
            "seconds": round(time.perf_counter() - started, 1),
            "val_acc": [round(h["val_acc"], 3) for h in history],
            "test": summary["test"],
        }
        print(json.dumps(line), flush=True)
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
