import math

import numpy as np
import pytest

from inspection.decision import DecisionPolicy, Verdict, decide, decide_batch, defect_scores, fault

CLASSES = ("good", "chipped", "spot")


def policy(**overrides) -> DecisionPolicy:
    values = dict(class_names=CLASSES, good_classes=("good",), pass_threshold=0.1, reject_threshold=0.5)
    values.update(overrides)
    return DecisionPolicy(**values)


@pytest.mark.parametrize(
    "probs, verdict, defect_class",
    [
        ((0.95, 0.03, 0.02), Verdict.PASS, None),
        ((0.80, 0.15, 0.05), Verdict.UNCERTAIN, "chipped"),
        ((0.30, 0.10, 0.60), Verdict.REJECT, "spot"),
        ((0.50, 0.40, 0.10), Verdict.REJECT, "chipped"),  # exactly at the reject threshold
    ],
)
def test_verdicts_follow_the_thresholds(probs, verdict, defect_class):
    decision = decide(np.array(probs), policy())
    assert decision.verdict == verdict
    assert decision.defect_class == defect_class
    assert math.isclose(decision.defect_score, 1 - probs[0], abs_tol=1e-9)


def test_only_pass_is_not_rejected():
    assert not decide(np.array((0.99, 0.005, 0.005)), policy()).is_rejected
    assert decide(np.array((0.8, 0.15, 0.05)), policy()).is_rejected


@pytest.mark.parametrize("probs", [(np.nan, 0.5, 0.5), (0.5, 0.5), (0.2, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_invalid_scores_are_faults_never_passes(probs):
    decision = decide(np.array(probs), policy())
    assert decision.verdict == Verdict.FAULT and decision.is_rejected


def test_per_class_threshold_rejects_below_the_global_band():
    strict = policy(defect_class_thresholds={"spot": 0.04})
    assert decide(np.array((0.95, 0.0, 0.05)), strict).verdict == Verdict.REJECT


def test_fault_record():
    record = fault("camera timeout")
    assert record.verdict == Verdict.FAULT and math.isnan(record.defect_score) and record.reason == "camera timeout"


def test_defect_scores_vectorised_matches_decide():
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=50)
    scores = defect_scores(probs, policy())
    assert np.allclose(scores, [decide(p, policy()).defect_score for p in probs])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"good_classes": ("ok",)}, "good_classes"),
        ({"good_classes": CLASSES}, "defect class"),
        ({"pass_threshold": 0.6}, "pass_threshold"),
        ({"defect_class_thresholds": {"good": 0.5}}, "not a defect class"),
    ],
)
def test_policy_rejects_inconsistent_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        policy(**overrides)


def test_a_batch_is_decided_exactly_as_row_by_row():
    policy = DecisionPolicy(class_names=("good", "chip", "crack"), good_classes=("good",), pass_threshold=0.2,
                            reject_threshold=0.6, defect_class_thresholds={"crack": 0.3})
    rng = np.random.default_rng(3)
    rows = rng.dirichlet([1.0, 1.0, 1.0], size=200)
    rows[5] = [np.nan, 0.5, 0.5]
    rows[6] = [1.2, -0.1, -0.1]
    rows[7] = [0.5, 0.2, 0.2]  # does not sum to 1
    batch = decide_batch(rows, policy)
    single = [decide(row, policy) for row in rows]  # one row at a time: any mix-up between rows shows
    assert [(d.verdict, d.defect_class, d.top_class, d.reason) for d in batch] == [
        (d.verdict, d.defect_class, d.top_class, d.reason) for d in single]
    assert {d.verdict for d in batch} == {Verdict.PASS, Verdict.REJECT, Verdict.UNCERTAIN, Verdict.FAULT}


def test_a_batch_of_the_wrong_width_is_all_faults():
    policy = DecisionPolicy(class_names=("good", "chip"), good_classes=("good",), pass_threshold=0.5, reject_threshold=0.5)
    decisions = decide_batch(np.full((3, 3), 1 / 3), policy)
    assert len(decisions) == 3 and all(d.verdict == Verdict.FAULT for d in decisions)
