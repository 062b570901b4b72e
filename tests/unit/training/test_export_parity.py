"""The ONNX export's parity gate: a failing check fails the export and leaves no bundle."""

import numpy as np
import pytest

import training.pipeline
import training.trainer
from inspection.errors import ExportError
from training.export_onnx import MAX_ABS_PROBABILITY_DIFF, parity_record, require_parity
from training.recipe import TrainRecipe


def probabilities(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.random((n, 3)).astype(np.float32) + np.array([2.0, 0.0, 0.0], dtype=np.float32)  # class 0 leads clearly
    return p / p.sum(1, keepdims=True)


def test_the_gate_passes_within_the_limit_and_fails_past_it_or_on_a_flipped_top1():
    reference = probabilities(2000)
    require_parity(parity_record(reference, reference + MAX_ABS_PROBABILITY_DIFF / 2))
    drifted = parity_record(reference, reference + 3 * MAX_ABS_PROBABILITY_DIFF)
    assert not drifted["passed"] and drifted["top1_agreement"] == 1.0
    with pytest.raises(ExportError, match="failed its parity gate"):
        require_parity(drifted)
    flipped = reference.copy()
    flipped[:3] = flipped[:3, ::-1]  # 3 of 2,000 images change their top-1: agreement 0.9985 < 0.999
    record = parity_record(reference, flipped)
    assert record["top1_agreement"] == pytest.approx(0.9985) and not record["passed"]


def test_a_failing_parity_gate_fails_training_and_writes_no_bundle(tmp_path, monkeypatch):
    from inspection.synthetic import write_dataset

    write_dataset(tmp_path / "data", count_per_class=6, seed=3, size_px=64, progress=False)
    served = training.trainer.predict_probabilities
    # The torch reference drifts from what the exported model serves, as an export-unsafe layer would.
    monkeypatch.setattr(training.trainer, "predict_probabilities", lambda *args: served(*args) + 1e-3)
    recipe = TrainRecipe(image_size_px=64, epochs=1, batch_size=16, device="cpu")
    with pytest.raises(ExportError, match="failed its parity gate"):
        training.pipeline.train_bundle(tmp_path / "data", tmp_path / "bundle", recipe, progress=False)
    assert not (tmp_path / "bundle").exists()
    assert not list(tmp_path.glob(".bundle.staging-*"))
