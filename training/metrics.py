"""Classification and inspection metrics (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np
from scipy.stats import beta

from inspection.decision import DecisionPolicy, Verdict


CONFIDENCE = 0.95


def clopper_pearson_upper(failures: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper bound of a binomial rate: with 0 escapes in 300 defects it is ~1.0%, not 0."""
    if trials == 0:
        return 1.0
    if failures >= trials:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, trials - failures))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def inspection_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, verdicts: list[Verdict], policy: DecisionPolicy
) -> dict:
    """Accuracy, per-class precision/recall, confusion, escape and false-reject rates.

    Escape: a defective item whose verdict is pass. False reject: a good item whose verdict is
    anything else (reject, uncertain or fault all take a good item off the line).
    """
    class_names = list(policy.class_names)
    n = int(len(y_true))
    y_pred = probabilities.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    good_mask = policy.good_mask
    is_good_item = good_mask[y_true] if n else np.zeros(0, dtype=bool)
    passed = np.array([v == Verdict.PASS for v in verdicts], dtype=bool)
    defective, good = int((~is_good_item).sum()), int(is_good_item.sum())
    escapes = int((passed & ~is_good_item).sum())
    false_rejects = int((~passed & is_good_item).sum())
    per_class = {}
    for i, name in enumerate(class_names):
        predicted, support, correct = int(matrix[:, i].sum()), int(matrix[i, :].sum()), int(matrix[i, i])
        per_class[name] = {
            "precision": correct / predicted if predicted else 0.0,
            "recall": correct / support if support else 0.0,
            "support": support,
        }
    verdict_counts = {v.value: int(sum(1 for x in verdicts if x == v)) for v in Verdict}
    return {
        "n": n,
        "accuracy": float((y_pred == y_true).mean()) if n else 0.0,
        "escape_rate": escapes / defective if defective else 0.0,
        "escape_rate_upper95": clopper_pearson_upper(escapes, defective),
        "escapes": escapes,
        "defective_items": defective,
        "false_reject_rate": false_rejects / good if good else 0.0,
        "false_rejects": false_rejects,
        "good_items": good,
        "verdicts": verdict_counts,
        "per_class": per_class,
        "confusion": {"labels": class_names, "matrix": matrix.tolist()},
    }
