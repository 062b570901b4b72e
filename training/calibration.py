"""Calibrate the pass threshold on the validation split to a target escape rate."""

from __future__ import annotations

import numpy as np

from inspection.decision import DecisionPolicy, defect_scores

DEFAULT_MAX_ESCAPE_RATE = 0.005
REJECT_THRESHOLD = 0.5  # a defect score above one half is the model's own call: reject outright


def calibrate_policy(
    probabilities: np.ndarray, y_true: np.ndarray, base: DecisionPolicy, max_escape_rate: float
) -> tuple[DecisionPolicy, dict]:
    """Choose the highest pass threshold that lets at most `max_escape_rate` of defective
    validation items pass. Items scoring between it and REJECT_THRESHOLD become `uncertain`.

    With no defective validation items there is nothing to calibrate on, so the threshold stays
    at REJECT_THRESHOLD and the returned record says so.
    """
    scores = defect_scores(probabilities, base)
    is_defective = ~base.good_mask[y_true]
    defect_scores_sorted = np.sort(scores[is_defective])
    allowed_escapes = int(np.floor(max_escape_rate * len(defect_scores_sorted)))
    if len(defect_scores_sorted) == 0:
        threshold, basis = REJECT_THRESHOLD, "no defective validation items: threshold left at the reject threshold"
    else:
        # An item passes when its score is strictly below the threshold, so setting it to the
        # (k+1)-th lowest defective score lets exactly the k lowest pass.
        threshold = float(min(REJECT_THRESHOLD, defect_scores_sorted[allowed_escapes]))
        basis = f"{allowed_escapes} of {len(defect_scores_sorted)} defective validation items may pass"
    policy = base.model_copy(update={"pass_threshold": threshold, "reject_threshold": REJECT_THRESHOLD})
    good_scores = scores[~is_defective]
    record = {
        "max_escape_rate": max_escape_rate,
        "pass_threshold": threshold,
        "reject_threshold": REJECT_THRESHOLD,
        "basis": basis,
        "validation_defective_items": int(is_defective.sum()),
        "validation_good_items": int((~is_defective).sum()),
        "validation_escapes": int((scores[is_defective] < threshold).sum()),
        "validation_false_rejects": int((good_scores >= threshold).sum()),
    }
    return DecisionPolicy.model_validate(policy.model_dump()), record
