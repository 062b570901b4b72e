"""The parity gate of a reduced-precision model (int8 Q/DQ ONNX, TensorRT fp16/int8 engines).

Against fp32 ONNX Runtime on the validation split: top-1 agreement >= 99.5% and an accuracy drop of
at most 0.5 point. A failing gate fails the export unless explicitly overridden, and the override
is recorded in bundle.json.
"""

from __future__ import annotations

import numpy as np

from inspection.errors import ExportError

MIN_TOP1_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.005


def precision_parity_record(fp32_probabilities: np.ndarray, candidate_probabilities: np.ndarray, labels: np.ndarray, split: str,
                            candidate: str) -> dict:
    """Top-1 agreement with fp32 ONNX Runtime and the accuracy drop on labelled held-out images; `passed` is the gate."""
    if fp32_probabilities.shape != candidate_probabilities.shape or len(labels) != len(fp32_probabilities) or not len(labels):
        raise ExportError(f"{candidate} parity needs the same non-empty set of labelled images from both models.")
    agreement = float((fp32_probabilities.argmax(1) == candidate_probabilities.argmax(1)).mean())
    fp32_accuracy = float((fp32_probabilities.argmax(1) == labels).mean())
    candidate_accuracy = float((candidate_probabilities.argmax(1) == labels).mean())
    return {
        "reference": "onnxruntime fp32",
        "candidate": candidate,
        "split": split,
        "images": int(len(labels)),
        "top1_agreement": agreement,
        "min_top1_agreement": MIN_TOP1_AGREEMENT,
        "fp32_accuracy": fp32_accuracy,
        "candidate_accuracy": candidate_accuracy,
        "accuracy_drop": fp32_accuracy - candidate_accuracy,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "max_abs_probability_diff": float(np.abs(fp32_probabilities - candidate_probabilities).max()),
        "passed": agreement >= MIN_TOP1_AGREEMENT and fp32_accuracy - candidate_accuracy <= MAX_ACCURACY_DROP,
    }


def require_precision_parity(record: dict, allow_failure: bool) -> None:
    if record["passed"] or allow_failure:
        return
    raise ExportError(
        f"{record['candidate']} failed its parity gate on {record['images']} {record['split']} images: top-1 agreement "
        f"{record['top1_agreement']:.4f} (needed {MIN_TOP1_AGREEMENT}), accuracy drop {record['accuracy_drop']:.4f} "
        f"(allowed {MAX_ACCURACY_DROP}). Use fp32, calibrate on more representative images, or pass "
        "--allow-parity-failure to keep it anyway (recorded in bundle.json; `auto` never picks it)."
    )
