"""`inspection export BUNDLE --precision int8 --calib DATA`: add a parity-gated Q/DQ model to a bundle."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from inspection.backends import open_backend
from inspection.bundle import INT8_ONNX_NAME, QuantizedModelEntry, load_bundle, reseal_with
from inspection.errors import DataError
from inspection.preprocess import to_model_input
from training.dataset_index import index_dataset
from training.evaluate import infer_probabilities, label_indices, load_prepared
from training.precision_gate import precision_parity_record, require_precision_parity
from training.quantize import METHOD, QUANTIZATION_SCOPES, quantize_qdq

MAX_CALIBRATION_IMAGES = 256


def export_int8(bundle_path: Path, calib_root: Path, allow_parity_failure: bool = False, progress: bool = True) -> dict:
    """Quantize, gate on the validation split, and reseal the bundle with model.int8.onnx. Returns the record."""
    bundle = load_bundle(bundle_path)
    spec = bundle.meta.input
    index = index_dataset(calib_root, progress=progress)
    calibration_entries = _spread(index.split("train"), MAX_CALIBRATION_IMAGES)
    check_split = next((name for name in ("val", "test") if index.split(name)), None)
    if not calibration_entries or check_split is None:
        raise DataError(f"{calib_root} needs train images for calibration and val (or test) images for the parity gate. "
                        "Pass the dataset the bundle was trained on.")
    check_entries = index.split(check_split)
    labels = label_indices(check_entries, bundle.meta.class_names)
    # The tensors the model takes: uint8 pixels for our bundles, normalised NCHW floats for an imported one.
    calibration = to_model_input(load_prepared(index.root, calibration_entries, spec, progress), spec)
    check_images = load_prepared(index.root, check_entries, spec, progress)
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        fp32 = infer_probabilities(open_backend("onnxruntime", bundle), check_images, spec)
        attempts = []
        for scope in QUANTIZATION_SCOPES:
            path = Path(tmp) / f"{len(attempts)}-{INT8_ONNX_NAME}"
            quantize_qdq(bundle.onnx_path, path, calibration, op_types_to_quantize=scope.op_types)
            int8 = infer_probabilities(open_backend("onnxruntime", bundle, precision="int8", int8_path=path), check_images, spec)
            parity = precision_parity_record(fp32, int8, labels, check_split, f"onnxruntime int8 (QDQ, {scope.name})")
            attempts.append((scope, path, parity))
            if parity["passed"]:
                break
        # The first scope that passed; when none did, the one closest to fp32 (kept only if overridden).
        scope, int8_path, parity = max(attempts, key=lambda attempt: (attempt[2]["passed"], attempt[2]["top1_agreement"]))
        require_precision_parity(parity, allow_parity_failure)
        entry = QuantizedModelEntry(
            method=f"{METHOD}; {scope.name}",
            calibration={"images": len(calibration_entries), "split": "train", "dataset_hash": index.dataset_hash},
            parity=parity,
            parity_overridden=not parity["passed"],
            scopes_tried=[{"scope": s.name, **{key: p[key] for key in ("top1_agreement", "accuracy_drop", "passed")}}
                          for s, _, p in attempts],
        )
        bundle_hash = reseal_with(bundle, {INT8_ONNX_NAME: int8_path}, bundle.meta.model_copy(update={"int8": entry}))
    return {"bundle": str(bundle.path), "bundle_hash": bundle_hash, "int8": entry.model_dump(mode="json")}


def _spread(entries: list, limit: int) -> list:
    """At most `limit` entries, evenly spread so every class is represented."""
    if len(entries) <= limit:
        return list(entries)
    picks = np.linspace(0, len(entries) - 1, limit).round().astype(int)
    return [entries[i] for i in picks]
