import numpy as np
import pytest

from inspection.decision import DecisionPolicy, Verdict
from training.calibration import REJECT_THRESHOLD, calibrate_policy, defective_items_to_show, target_note
from training.metrics import clopper_pearson_upper, confusion_matrix, inspection_metrics

POLICY = DecisionPolicy(class_names=("good", "chip", "spot"), good_classes=("good",), pass_threshold=0.5, reject_threshold=0.5)


def test_clopper_pearson_zero_failures_is_the_rule_of_three():
    # With 0 failures in n trials the one-sided 95% bound is 1 - 0.05**(1/n) (about 3/n).
    assert clopper_pearson_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-9)


def test_clopper_pearson_known_value():
    # scipy-independent reference: binomial CDF at 2 of 100 with p = bound equals 0.05.
    from math import comb

    bound = clopper_pearson_upper(2, 100)
    cdf = sum(comb(100, k) * bound**k * (1 - bound) ** (100 - k) for k in range(3))
    assert cdf == pytest.approx(0.05, abs=1e-9)


def test_confusion_matrix_counts():
    m = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_escape_and_false_reject_rates():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 0, 1, 1, 0, 2, 2]].astype(np.float32)
    verdicts = [Verdict.PASS, Verdict.PASS, Verdict.UNCERTAIN, Verdict.REJECT, Verdict.REJECT, Verdict.PASS, Verdict.REJECT, Verdict.FAULT]
    m = inspection_metrics(y_true, probs, verdicts, POLICY)
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(6 / 8)
    assert m["escapes"] == 1 and m["escape_rate"] == pytest.approx(1 / 4)
    assert m["false_rejects"] == 2 and m["false_reject_rate"] == pytest.approx(2 / 4)
    assert m["per_class"]["chip"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert m["confusion"]["matrix"][1] == [1, 1, 0]
    assert m["verdicts"] == {"pass": 3, "reject": 3, "uncertain": 1, "fault": 1}


def test_calibration_meets_the_target_on_validation():
    rng = np.random.default_rng(0)
    n = 400
    y_true = rng.integers(0, 3, n)
    defect_score = np.where(y_true == 0, rng.beta(1, 20, n), rng.beta(8, 2, n))
    other = rng.random(n)
    probs = np.stack([1 - defect_score, defect_score * other, defect_score * (1 - other)], axis=1)
    policy, record = calibrate_policy(probs, y_true, POLICY, max_escape_rate=0.01)
    defective = y_true != 0
    escapes = (defect_score[defective] < policy.pass_threshold).sum()
    assert escapes <= np.floor(0.01 * defective.sum())
    assert record["validation_escapes"] == escapes
    assert policy.reject_threshold == REJECT_THRESHOLD and policy.pass_threshold <= REJECT_THRESHOLD


def test_calibration_without_defective_items_keeps_the_reject_threshold():
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    policy, record = calibrate_policy(probs, np.array([0, 0]), POLICY, 0.005)
    assert policy.pass_threshold == REJECT_THRESHOLD and "no defective" in record["basis"]


def test_defective_items_to_show_a_target_is_the_rule_of_three_inverted():
    needed = defective_items_to_show(0.005)
    assert needed == 598  # 1 - 0.05**(1/598) <= 0.5% < 1 - 0.05**(1/597)
    assert clopper_pearson_upper(0, needed) <= 0.005 < clopper_pearson_upper(0, needed - 1)
    assert defective_items_to_show(0.0) is None


def test_calibration_says_when_validation_cannot_show_the_target():
    # 270 defective validation items, as a 300-per-class dataset's val split has: the threshold lets
    # 1 pass (0.37% <= 0.5%), but the 95% bound on the escape rate is about 1.7%.
    rng = np.random.default_rng(1)
    y_true = np.concatenate([np.zeros(45, int), rng.integers(1, 3, 270)])
    defect_score = np.where(y_true == 0, rng.beta(1, 20, len(y_true)), rng.beta(8, 2, len(y_true)))
    probs = np.stack([1 - defect_score, defect_score / 2, defect_score / 2], axis=1)
    _, record = calibrate_policy(probs, y_true, POLICY, max_escape_rate=0.005)
    assert record["validation_escapes"] == 1
    assert record["validation_escape_rate_upper95"] == pytest.approx(clopper_pearson_upper(1, 270))
    assert not record["target_shown_at_95"] and record["defective_items_to_show_target"] == 598
    note = target_note(dict(record, split="val"))
    assert "270 defective val items" in note and "598" in note and "\n" not in note
    # 700 defective items that all score above the reject threshold: none pass, and 700 show 0.5%.
    y_clear = np.concatenate([np.zeros(45, int), np.ones(700, int)])
    clear = np.where(y_clear == 0, 0.02, 0.9)
    _, shown = calibrate_policy(np.stack([1 - clear, clear, 0 * clear], axis=1), y_clear, POLICY, max_escape_rate=0.005)
    assert shown["validation_escapes"] == 0 and shown["target_shown_at_95"] and target_note(shown) is None
