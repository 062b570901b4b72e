import numpy as np
import pytest
import torch

from inspection.errors import ConfigError, OutputExistsError
from inspection.input_spec import default_input_spec
from training.models import build_classifier
from training.recipe import TrainRecipe
from training.trainer import (LabeledImages, WeightAverage, class_weights, classes_missing_from, epoch_order, epochs_to_plan,
                              learning_rate_at, train_classifier)
from helpers.images import blob_image

SPEC = default_input_spec(32, 3)


def tiny_data(n: int, seed: int) -> LabeledImages:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = np.stack([blob_image(rng, 32, bool(label)) for label in labels])
    return LabeledImages(images, labels.astype(np.int64))


def recipe(**overrides) -> TrainRecipe:
    values = dict(model="mobilenet_v3_small", image_size_px=32, epochs=3, batch_size=8, device="cpu", seed=5)
    values.update(overrides)
    return TrainRecipe(**values)


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [learning_rate_at(step, 100, 10, 1.0) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert learning_rate_at(100, 100, 10, 1.0) == pytest.approx(0.0)


def test_time_budget_plans_as_many_epochs_as_fit_at_the_first_epochs_pace(tmp_path):
    assert epochs_to_plan(100, 6.0, 570.0) == 95
    assert epochs_to_plan(100, 5.0, 570.0) == 100  # never more than asked
    assert epochs_to_plan(100, 900.0, 570.0) == 1  # never none
    assert epochs_to_plan(7, 60.0, None) == 7  # no budget: the epochs asked
    train, val = tiny_data(16, 0), tiny_data(4, 1)
    result = train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=5, time_budget_s=1e-6), tmp_path / "c", "h", progress=False, good_classes=("a",))
    assert (result.epochs_planned, result.epochs_run, result.stopped_early) == (1, 1, False)
    assert result.history[0]["seconds"] > 0  # each epoch's time is kept, to see whether the pace held


def test_weight_average_follows_the_model_then_averages_it():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.9)
    before = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(2.0)
    average.update(model, step=0)  # ramp: decay 1/10 at the first step
    assert torch.allclose(average.model[0].weight, 0.1 * before + 0.9 * (before + 1.0))
    assert torch.allclose(average.model[1].running_mean, torch.full((2,), 1.8))
    average.update(model, step=10_000)  # the ramp is over: the set decay
    assert torch.allclose(average.model[0].weight, 0.9 * (0.1 * before + 0.9 * (before + 1.0)) + 0.1 * (before + 1.0))
    assert int(average.model[1].num_batches_tracked) == int(model[1].num_batches_tracked)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_an_epoch_draws_the_images_the_model_gets_wrong_more_often_within_a_cap():
    assert sorted(epoch_order(np.random.default_rng(0), np.ones(50), boost=0)) == list(range(50))  # off: each image once
    loss = np.full(1000, 0.01)
    loss[0], loss[1] = 0.03, 1.0  # image 1: far past the cap
    draws = np.concatenate([epoch_order(np.random.default_rng(seed), loss, boost=4.0) for seed in range(200)])
    counts = np.bincount(draws, minlength=1000) / 200
    mean = loss.mean()  # 0.011: chances 1 + min(loss / mean, 4) are 1.9 (easy), 3.7 (image 0) and 5 (image 1, capped)
    easy = counts[2:].mean()
    assert counts[0] / easy == pytest.approx((1 + 0.03 / mean) / (1 + 0.01 / mean), rel=0.15)
    assert counts[1] / easy == pytest.approx(5 / (1 + 0.01 / mean), rel=0.15)
    assert np.array_equal(epoch_order(np.random.default_rng(3), loss, 4.0), epoch_order(np.random.default_rng(3), loss, 4.0))


def test_class_weights_balance_the_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights[0] * 3 == pytest.approx(weights[1] * 1) and weights[2] == 0


def test_a_validation_split_without_some_class_neither_selects_nor_stops_the_run(tmp_path):
    assert classes_missing_from(np.array([1, 1]), np.array([0, 1, 2]), ["a", "b", "c"]) == ["a", "c"]
    assert classes_missing_from(np.array([], dtype=np.int64), np.array([0, 1]), ["a", "b"]) == ["a", "b"]
    train, val = tiny_data(32, 0), tiny_data(8, 1)
    only_b = LabeledImages(val.images[val.labels == 1], val.labels[val.labels == 1])
    # Patience 1 stops a run selected on validation at the first epoch that does not improve it.
    result = train_classifier(train, only_b, ["a", "b"], SPEC, recipe(epochs=6, patience_epochs=1), tmp_path / "b", "h",
                              progress=False, good_classes=("a",))
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (6, 6, False)
    assert result.model_selection == "last epoch: the validation split has no a"
    both = train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=12, patience_epochs=1), tmp_path / "ab", "h",
                            progress=False, good_classes=("a",))
    assert both.model_selection == "best validation epoch"
    # This seeded run's validation score stops improving early: patience 1 ends it one epoch after its best.
    assert both.stopped_early and both.epochs_run == both.best_epoch + 1 < 12


def test_training_is_reproducible(tmp_path):
    train, val = tiny_data(32, 0), tiny_data(8, 1)
    first = train_classifier(train, val, ["a", "b"], SPEC, recipe(), tmp_path / "first", "hash", progress=False, good_classes=("a",))
    again = train_classifier(train, val, ["a", "b"], SPEC, recipe(), tmp_path / "again", "hash", progress=False, good_classes=("a",))
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in again.history]
    with pytest.raises(OutputExistsError, match="--resume"):
        train_classifier(train, val, ["a", "b"], SPEC, recipe(), tmp_path / "first", "hash", progress=False, good_classes=("a",))


def test_resume_after_an_interruption_repeats_the_run_exactly(tmp_path, monkeypatch):
    import training.trainer as trainer

    train, val = tiny_data(32, 0), tiny_data(8, 1)
    # The time budget plans 3 of the 4 epochs (as a slow first epoch would); the resumed run must keep that plan.
    monkeypatch.setattr(trainer, "epochs_to_plan", lambda max_epochs, first_epoch_s, budget_s: 3)
    straight = train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=4), tmp_path / "straight", "h", progress=False, good_classes=("a",))
    original = trainer._save_checkpoint

    def save_then_stop(directory, state, *args):
        original(directory, state, *args)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=4), tmp_path / "part", "h", progress=False, good_classes=("a",))
    monkeypatch.undo()  # the resumed run plans nothing: it reads the plan from the checkpoint
    resumed = train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=4), tmp_path / "part", "h", resume=True, progress=False, good_classes=("a",))
    assert straight.epochs_run == resumed.epochs_run == resumed.epochs_planned == 3
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for key, value in straight.classifier.state_dict().items():
        assert torch.equal(value, resumed.classifier.state_dict()[key]), key


def test_resume_refuses_another_dataset(tmp_path):
    train, val = tiny_data(16, 0), tiny_data(4, 1)
    train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=1), tmp_path / "c", "hash-a", progress=False, good_classes=("a",))
    with pytest.raises(ConfigError, match="another dataset"):
        train_classifier(train, val, ["a", "b"], SPEC, recipe(epochs=1), tmp_path / "c", "hash-b", resume=True, progress=False, good_classes=("a",))


def test_local_weights_file_is_loaded_and_head_mismatch_skipped(tmp_path):
    from safetensors.torch import save_file

    source = build_classifier("resnet18", 1000, SPEC)
    save_file({k: v.contiguous() for k, v in source.backbone.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = build_classifier("resnet18", 2, SPEC, tmp_path / "w.safetensors")
    assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)
    assert model.backbone.fc.weight.shape == (2, 512)


def test_grey_input_runs_through_a_colour_backbone():
    model = build_classifier("mobilenet_v3_small", 2, default_input_spec(32, 1)).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 32, 32, 1, dtype=torch.uint8)).shape == (2, 2)
