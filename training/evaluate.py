"""Evaluate a bundle on a dataset split through a real backend, with the bundle's decision policy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspection.console import progress_bar
from inspection.backends import Backend, open_backend
from inspection.bundle import DATASET_MANIFEST_NAME, Bundle, load_bundle
from inspection.decision import DecisionPolicy, Verdict, decide_batch
from inspection.errors import DataError
from inspection.image_io import read_image
from inspection.input_spec import InputSpec
from inspection.preprocess import prepare, to_model_input
from training.dataset_index import SPLITS, ManifestEntry, index_dataset, read_manifest_jsonl
from training.metrics import inspection_metrics

BATCH_SIZE = 64


@dataclass(frozen=True)
class Evaluation:
    entries: list[ManifestEntry]
    y_true: np.ndarray
    probabilities: np.ndarray
    verdicts: list[Verdict]
    metrics: dict


def load_prepared(root: Path, entries: list[ManifestEntry], spec: InputSpec, progress: bool = False) -> np.ndarray:
    """Decode and `prepare` images into one (N, H, W, C) uint8 array; OpenCV releases the GIL."""
    out = np.empty((len(entries), spec.size_px, spec.size_px, spec.channels), dtype=np.uint8)

    def load(i: int) -> None:
        out[i] = prepare(read_image(root / entries[i].path), spec)

    with progress_bar(enabled=progress, transient=True) as bar, ThreadPoolExecutor(max_workers=2) as pool:
        task = bar.add_task("loading images", total=len(entries))
        for _ in pool.map(load, range(len(entries))):
            bar.advance(task)
    return out


def label_indices(entries: list[ManifestEntry], class_names: tuple[str, ...]) -> np.ndarray:
    unknown = sorted({e.label for e in entries} - set(class_names))
    if unknown:
        raise DataError(
            f"dataset classes {unknown} are not classes of the model ({', '.join(class_names)}). "
            "Evaluate on data with the model's classes, or rename the folders."
        )
    return np.array([class_names.index(e.label) for e in entries], dtype=np.int64)


def infer_probabilities(backend: Backend, prepared: np.ndarray, spec: InputSpec) -> np.ndarray:
    chunks = [backend.infer(to_model_input(prepared[i : i + BATCH_SIZE], spec)) for i in range(0, len(prepared), BATCH_SIZE)]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def decide_all(probabilities: np.ndarray, policy: DecisionPolicy) -> list[Verdict]:
    return [decision.verdict for decision in decide_batch(probabilities, policy)]


def evaluate_probabilities(entries: list[ManifestEntry], y_true: np.ndarray, probabilities: np.ndarray, policy: DecisionPolicy) -> Evaluation:
    verdicts = decide_all(probabilities, policy)
    return Evaluation(entries, y_true, probabilities, verdicts, inspection_metrics(y_true, probabilities, verdicts, policy))


def evaluate_bundle(bundle_path: Path, data_root: Path, split: str = "test", backend_kind: str = "onnxruntime", progress: bool = True) -> tuple[Bundle, Evaluation, dict]:
    """Evaluate `bundle_path` on `split` of `data_root`. Returns the bundle, the evaluation and facts
    about the selection (how many images were left out because the model trained on them)."""
    if split not in SPLITS + ("all",):
        raise DataError(f"unknown split '{split}'; use one of {', '.join(SPLITS)} or all.")
    bundle = load_bundle(bundle_path)
    index = index_dataset(data_root, progress=progress)
    entries = index.split(split)
    seen = _seen_in_training(bundle)
    excluded = [e for e in entries if e.sha256 in seen] if split != "all" else []
    entries = [e for e in entries if e.sha256 not in seen] if split != "all" else entries
    if not entries:
        raise DataError(
            f"split '{split}' of {data_root} has no images the model has not trained on. "
            "Use --split all for a dataset the model never saw, or another split."
        )
    y_true = label_indices(entries, bundle.meta.class_names)
    prepared = load_prepared(index.root, entries, bundle.meta.input, progress=progress)
    backend = open_backend(backend_kind, bundle)
    try:
        probabilities = infer_probabilities(backend, prepared, bundle.meta.input)
    finally:
        backend.close()
    evaluation = evaluate_probabilities(entries, y_true, probabilities, bundle.meta.policy)
    selection = {
        "split": split,
        "dataset_hash": index.dataset_hash,
        "excluded_seen_in_training": len(excluded),
        "skipped_files": len(index.skipped),
        "excluded_files": [list(s) for s in index.skipped],  # (path, reason): corrupt or not images
        "backend": backend.description,
    }
    return bundle, evaluation, selection


def _seen_in_training(bundle: Bundle) -> set[str]:
    """SHA-256 of every image the bundle trained or calibrated on, so a test split can never include one."""
    path = bundle.path / DATASET_MANIFEST_NAME
    if not path.is_file():
        return set()
    return {e.sha256 for e in read_manifest_jsonl(path) if e.split in ("train", "val")}
