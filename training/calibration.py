"""Calibrate the pass threshold on the validation split to a target escape rate."""

from __future__ import annotations

import math

import numpy as np

from inspection.decision import DecisionPolicy, defect_scores
from training.metrics import CONFIDENCE, clopper_pearson_upper

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
    escapes = int((scores[is_defective] < threshold).sum())
    escape_rate_upper95 = clopper_pearson_upper(escapes, len(defect_scores_sorted))
    record = {
        "max_escape_rate": max_escape_rate,
        "pass_threshold": threshold,
        "reject_threshold": REJECT_THRESHOLD,
        "basis": basis,
        "validation_defective_items": int(is_defective.sum()),
        "validation_good_items": int((~is_defective).sum()),
        "validation_escapes": escapes,
        "validation_false_rejects": int((good_scores >= threshold).sum()),
        # The threshold meets the target on these items; whether they show it at 95% confidence is
        # another matter: with a few hundred defective items they cannot (see target_note).
        "validation_escape_rate_upper95": escape_rate_upper95,
        "target_shown_at_95": escape_rate_upper95 <= max_escape_rate,
        "defective_items_to_show_target": defective_items_to_show(max_escape_rate),
    }
    return DecisionPolicy.model_validate(policy.model_dump()), record


def defective_items_to_show(max_escape_rate: float) -> int | None:
    """The fewest defective validation items that, with none passing, bound the escape rate at
    `max_escape_rate` with 95% confidence (one-sided Clopper-Pearson: 1 - 0.05**(1/n) <= rate).
    None for a target of 0, which no finite sample shows."""
    if max_escape_rate <= 0:
        return None
    if max_escape_rate >= 1:
        return 1
    return math.ceil(math.log(1 - CONFIDENCE) / math.log(1 - max_escape_rate))


def target_note(record: dict) -> str | None:
    """One line for the trainer when the validation split cannot show the escape target, else None."""
    if record["target_shown_at_95"] or not record["validation_defective_items"]:
        return None
    needed = record["defective_items_to_show_target"]
    return (f"the {record['validation_defective_items']} defective {record.get('split', 'validation')} items meet the "
            f"{record['max_escape_rate']:.2%} escape target ({record['validation_escapes']} passed) but cannot show it: the "
            f"95% upper bound of their escape rate is {record['validation_escape_rate_upper95']:.2%}. "
            + (f"Showing it needs at least {needed} defective validation items with none passing." if needed else ""))
