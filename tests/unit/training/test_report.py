"""The validation report: files written, valid PNGs, figures quoted in report.md, degenerate splits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from inspection.errors import DataError
from training.report import _curves, _worst_tiles, write_validation_report

SEVEN = ["good", "good_rotated", "chipped", "cracked", "discoloured", "foreign_particle", "missing_print"]
EXPECTED_FILES = ["confusion.png", "pr_roc.png", "worst.png", "report.md", "report.html"]
CALIBRATION = {"pass_threshold": 0.12, "reject_threshold": 0.5, "max_escape_rate": 0.005, "basis": "2 of 400 may pass"}


def _metrics(class_names: list[str], y_true: np.ndarray, probabilities: np.ndarray, verdicts: list[str]) -> dict:
    """Metrics shaped like training.metrics produces; the headline figures are fixed, odd values so
    the test can look for exactly them in report.md."""
    c = len(class_names)
    matrix = np.zeros((c, c), dtype=np.int64)
    np.add.at(matrix, (y_true, probabilities.argmax(axis=1)), 1)
    per_class = {
        name: {"precision": 0.9, "recall": 0.8, "support": int(matrix[i].sum())} for i, name in enumerate(class_names)
    }
    return {
        "n": len(y_true),
        "accuracy": 0.8765,
        "escape_rate": 0.0123,
        "escape_rate_upper95": 0.0311,
        "escapes": 3,
        "defective_items": 244,
        "false_reject_rate": 0.0456,
        "false_rejects": 7,
        "good_items": 153,
        "verdicts": {v: verdicts.count(v) for v in ("pass", "reject", "uncertain", "fault")},
        "per_class": per_class,
        "confusion": {"labels": class_names, "matrix": matrix.tolist()},
    }


def _inputs(tmp_path: Path, class_names: list[str], good: list[str], n: int, only_good: bool = False) -> dict:
    rng = np.random.default_rng(len(class_names) * 1000 + n)
    y_true = np.zeros(n, dtype=np.int64) if only_good else rng.integers(0, len(class_names), n)
    logits = rng.normal(size=(n, len(class_names)))
    logits[np.arange(n), y_true] += 2.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    good_mask = np.array([name in good for name in class_names])
    scores = 1.0 - probabilities[:, good_mask].sum(axis=1)
    verdicts = ["pass" if s < 0.12 else "reject" if s >= 0.5 else "uncertain" for s in scores]
    # A few tiny images, shared by all items: grey and colour, as cameras deliver both.
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    images = []
    for k in range(4):
        path = image_dir / f"item_{k}.png"
        image = np.full((48, 64, 3) if k % 2 else (48, 64), 30 + 50 * k, dtype=np.uint8)
        assert cv2.imwrite(str(path), image)
        images.append(path)
    return {
        "class_names": class_names,
        "good_classes": good,
        "y_true": y_true,
        "probabilities": probabilities.astype(np.float32),
        "verdicts": verdicts,
        "image_paths": [images[i % len(images)] for i in range(n)],
        "calibration": CALIBRATION,
        "metrics": _metrics(class_names, y_true, probabilities, verdicts),
    }


def _load_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_png(path: Path, min_side: int = 100) -> None:
    image = cv2.imread(str(path))
    assert image is not None, f"{path.name} is not a decodable PNG"
    height, width = image.shape[:2]
    assert min_side <= height <= 5000 and min_side <= width <= 5000, (path.name, image.shape)


@pytest.mark.parametrize(("class_names", "good", "n"), [(["good", "defect"], ["good"], 200), (SEVEN, SEVEN[:2], 400)])
def test_report_writes_all_files_with_the_given_figures(tmp_path, class_names, good, n):
    inputs = _inputs(tmp_path, class_names, good, n)
    out_dir = tmp_path / "bundle" / "report"  # parents do not exist yet
    written = write_validation_report(out_dir, title="demo (test split)", load_image=_load_image, **inputs)

    assert [p.name for p in written] == EXPECTED_FILES
    assert all(p.is_file() and p.parent == out_dir for p in written)
    _check_png(out_dir / "confusion.png", min_side=300)
    _check_png(out_dir / "pr_roc.png", min_side=300)
    _check_png(out_dir / "worst.png")
    markdown = (out_dir / "report.md").read_text()
    assert "demo (test split)" in markdown
    for figure in ("87.65%", "1.23%", "3.11%", "4.56%", "0.12", "2 of 400 may pass"):
        assert figure in markdown, figure
    for name in ("confusion.png", "pr_roc.png", "worst.png"):
        assert f"]({name})" in markdown
    assert all(name in markdown for name in class_names)
    page = (out_dir / "report.html").read_text()
    assert "87.65%" in page and 'src="worst.png"' in page
    assert "<script" not in page and "http" not in page  # self-contained, no JS


def test_only_good_items_do_not_crash(tmp_path):
    inputs = _inputs(tmp_path, ["good", "defect"], ["good"], 30, only_good=True)
    written = write_validation_report(tmp_path / "out", title="only good", load_image=_load_image, **inputs)
    assert len(written) == 5
    _check_png(tmp_path / "out" / "pr_roc.png")
    _check_png(tmp_path / "out" / "worst.png")


def test_single_item_and_no_mistakes(tmp_path):
    inputs = _inputs(tmp_path, SEVEN, SEVEN[:2], 1)
    inputs["probabilities"] = np.eye(7, dtype=np.float32)[inputs["y_true"]]  # correct and certain
    inputs["verdicts"] = ["pass" if inputs["y_true"][0] < 2 else "reject"]
    write_validation_report(tmp_path / "out", title="one", load_image=_load_image, **inputs)
    _check_png(tmp_path / "out" / "worst.png")  # the "no misclassified images" placeholder


def test_loads_at_most_sixteen_images_and_survives_a_missing_one(tmp_path):
    inputs = _inputs(tmp_path, ["good", "defect"], ["good"], 300)
    inputs["probabilities"] = inputs["probabilities"][:, ::-1].copy()  # nearly everything wrong
    calls = []

    def load(path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(path)
        return _load_image(path)

    write_validation_report(tmp_path / "out", title="many wrong", load_image=load, **inputs)
    assert len(calls) == 16
    _check_png(tmp_path / "out" / "worst.png")


def test_worst_cases_put_escapes_first_most_confident_first():
    class_names = ["good", "defect"]
    y_true = np.array([1, 1, 0, 1, 0])
    probabilities = np.array([[0.7, 0.3], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    verdicts = ["pass", "pass", "reject", "uncertain", "uncertain"]
    scores = probabilities[:, 1]
    paths = [Path(f"/img/{i}.png") for i in range(5)]
    tiles = _worst_tiles(class_names, y_true, probabilities, scores, y_true == 1, verdicts, paths)
    assert [t[0].name for t in tiles] == ["1.png", "0.png", "2.png", "3.png", "4.png"]
    assert [t[2] for t in tiles] == [True, True, False, False, False]
    assert tiles[0][1].startswith("defect -> good (p=0.90), pass")


def test_curves_match_the_rank_statistic_with_ties():
    rng = np.random.default_rng(3)
    positive = rng.random(500) < 0.3
    scores = np.round(rng.random(500) * 0.6 + 0.3 * positive, 2)  # rounded: many ties
    curves = _curves(scores, positive)
    expected_auc = mannwhitneyu(scores[positive], scores[~positive]).statistic / (positive.sum() * (~positive).sum())
    assert curves["auc"] == pytest.approx(expected_auc)
    assert 0.0 < curves["ap"] <= 1.0 and curves["recall"][-1] == pytest.approx(1.0)


def test_mismatched_inputs_name_the_lengths(tmp_path):
    inputs = _inputs(tmp_path, ["good", "defect"], ["good"], 10)
    inputs["verdicts"] = inputs["verdicts"][:9]
    with pytest.raises(DataError, match="9 verdicts"):
        write_validation_report(tmp_path / "out", title="bad", load_image=_load_image, **inputs)


def test_write_confusion_png_draws_a_matrix_given_as_eval_json_gives_it(tmp_path):
    from training.report import write_confusion_png

    confusion = {"labels": ["good", "cracked", "foreign_particle"], "matrix": [[40, 0, 0], [1, 38, 1], [0, 30, 10]]}
    path = write_confusion_png(confusion, ["good"], tmp_path / "c.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
    # A figure that drew nothing would be flat white.
    assert image.std() > 10
