"""Model-assisted labeling: the bundle's prediction for every catalogued image, cached per bundle.

Runs through ONNX Runtime with the bundle's own preprocessing (the same pixels the station sees),
in a background thread so the app is usable at once; filters by prediction see what is done so far.
uncertainty = 1 - (top-1 probability - top-2 probability): 1 when the model cannot separate two classes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from inspection.bundle import Bundle
from inspection.errors import InspectionError
from inspection.image_io import read_image
from inspection.preprocess import prepare, to_model_input
from training.labeling.catalog import Catalog

BATCH = 32


@dataclass(frozen=True, slots=True)
class Prediction:
    predicted: str
    confidence: float
    uncertainty: float


def summarise(probabilities: np.ndarray, class_names: tuple[str, ...]) -> Prediction:
    ranked = np.sort(probabilities)[::-1]
    top1 = float(ranked[0])
    top2 = float(ranked[1]) if len(ranked) > 1 else 0.0
    return Prediction(class_names[int(np.argmax(probabilities))], top1, 1.0 - (top1 - top2))


def predict_missing(catalog: Catalog, bundle: Bundle, backend, stop: threading.Event | None = None) -> int:
    """Predict every image of the catalog that has no prediction of this bundle yet; returns how many."""
    rows = catalog.query(
        "SELECT DISTINCT items.sha256, items.origin, items.path FROM items LEFT JOIN predictions p "
        "ON p.sha256 = items.sha256 AND p.bundle_hash = ? WHERE p.sha256 IS NULL",
        (bundle.bundle_hash,),
    )
    spec, names = bundle.meta.input, bundle.meta.class_names
    done = 0
    for start in range(0, len(rows), BATCH):
        if stop is not None and stop.is_set():
            break
        shas, prepared = [], []
        for sha, origin, path in rows[start:start + BATCH]:
            try:
                image = read_image(catalog.path_of(origin, path))
            except (InspectionError, OSError):
                continue  # unreadable images stay without a prediction; the index already warned about them
            shas.append(sha)
            prepared.append(prepare(image, spec))
        if not prepared:
            continue
        probabilities = backend.infer(to_model_input(np.stack(prepared), spec))
        results = [summarise(p, names) for p in probabilities]
        catalog.store_predictions(bundle.bundle_hash, [(sha, r.predicted, r.confidence, r.uncertainty) for sha, r in zip(shas, results)])
        done += len(shas)
    return done


def prediction_of(catalog: Catalog, sha256: str, bundle_hash: str) -> Prediction | None:
    rows = catalog.query("SELECT predicted, confidence, uncertainty FROM predictions WHERE sha256=? AND bundle_hash=?", (sha256, bundle_hash))
    return Prediction(*rows[0]) if rows else None
