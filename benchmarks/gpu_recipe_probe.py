"""Why does the default recipe learn the synthetic set slowly? One probe per process, in parallel, on a lent GPU.

Each probe trains for a fixed number of epochs without early stopping and prints one JSON line
(train and validation accuracy per epoch, test metrics). An epoch's result does not depend on the
device, so the epoch count at which a probe reaches a given accuracy carries over to the 2-core CPU,
where one epoch of the default recipe takes about 12 s.

    python3 benchmarks/gpu_recipe_probe.py DATA OUT.jsonl EPOCHS
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PROBES = {
    "default": {},
    "no_augmentation": {"_no_augmentation": True},
    "resnet18_128px": {"model": "resnet18", "image_size_px": 128},
    "lr3e-3": {"learning_rate": 3e-3},
    "224px": {"image_size_px": 224},
}


def run_probe(name: str, data: str, epochs: int) -> dict:
    import albumentations as A

    import training.trainer as trainer
    from training.pipeline import train_bundle
    from training.recipe import TrainRecipe

    options = dict(PROBES[name])
    if options.pop("_no_augmentation", False):
        trainer.build_augmentation = lambda seed: A.Compose([], seed=seed)
    recipe = TrainRecipe(device="cuda", epochs=epochs, patience_epochs=1000, **options)
    started = time.perf_counter()
    bundle = Path(tempfile.mkdtemp(prefix=f"probe-{name}-")) / "bundle"  # never an earlier run's folder
    summary = train_bundle(Path(data), bundle, recipe, progress=False)
    meta = json.loads((bundle / "bundle.json").read_text())
    history = meta["recipe"]["training"]["history"]
    return {
        "probe": name, "options": PROBES[name], "epochs": epochs, "seconds": round(time.perf_counter() - started, 1),
        "train_acc": [round(h["train_acc"], 3) for h in history], "val_acc": [round(h["val_acc"], 3) for h in history],
        "test": summary["test"],
    }


def main(data: str, out: Path, epochs: int) -> None:
    with ProcessPoolExecutor(max_workers=len(PROBES)) as pool:
        futures = [pool.submit(run_probe, name, data, epochs) for name in PROBES]
        for future in futures:
            try:
                line = future.result()
            except Exception as exc:  # one failed probe must not lose the others' results
                line = {"error": repr(exc)}
            print(json.dumps(line), flush=True)
            with open(out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="training-recipe probes, one process each (see the docstring)")
    parser.add_argument("data", help="synthetic dataset folder")
    parser.add_argument("out", type=Path, help="JSON-lines file the probes append to")
    parser.add_argument("epochs", type=int, help="epochs per probe (no early stopping)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        parser.error(f"{args.data} is not a dataset folder")
    main(args.data, args.out, args.epochs)
