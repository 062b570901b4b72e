"""A training run's bad options are reported before the dataset is read or its images are loaded."""

import pytest

import training.evaluate
import training.pipeline
from helpers.images import make_two_class_dataset
from inspection.errors import BackendUnavailableError, ConfigError, OutputExistsError
from training.pipeline import checkpoint_dir_for, train_bundle
from training.recipe import TrainRecipe
from training.start_checks import CHECKPOINT_NAME


def never(*args, **kwargs):
    raise AssertionError("reached: the check should have come first")


@pytest.fixture()
def data(tmp_path):
    (tmp_path / "data" / "good").mkdir(parents=True)
    return tmp_path / "data"


def test_a_missing_weights_file_is_told_before_the_dataset_is_read(data, tmp_path, monkeypatch):
    monkeypatch.setattr(training.pipeline, "index_dataset", never)
    with pytest.raises(ConfigError, match="weights file .*w.pt does not exist"):
        train_bundle(data, tmp_path / "b", TrainRecipe(weights=str(tmp_path / "w.pt")), progress=False)


def test_the_checkpoint_is_checked_against_resume_before_the_dataset_is_read(data, tmp_path, monkeypatch):
    monkeypatch.setattr(training.pipeline, "index_dataset", never)
    with pytest.raises(ConfigError, match="--resume was given but .* does not exist"):
        train_bundle(data, tmp_path / "b", TrainRecipe(), resume=True, progress=False)
    checkpoint_dir_for(tmp_path / "b").mkdir()
    (checkpoint_dir_for(tmp_path / "b") / CHECKPOINT_NAME).write_bytes(b"an earlier run")
    with pytest.raises(OutputExistsError, match="Pass --resume to continue it"):
        train_bundle(data, tmp_path / "b", TrainRecipe(), progress=False)


@pytest.fixture()
def two_classes(tmp_path):
    return make_two_class_dataset(tmp_path / "two", per_class=6, size_px=32)


def test_an_unknown_model_is_told_before_the_images_are_loaded(two_classes, tmp_path, monkeypatch):
    monkeypatch.setattr(training.evaluate, "load_prepared", never)
    with pytest.raises(ConfigError, match="unknown model 'resnet_9000'"):
        train_bundle(two_classes, tmp_path / "b", TrainRecipe(model="resnet_9000"), progress=False)


def test_cuda_without_a_gpu_is_told_before_the_images_are_loaded(two_classes, tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(training.evaluate, "load_prepared", never)
    with pytest.raises(BackendUnavailableError, match="--device cuda was asked for"):
        train_bundle(two_classes, tmp_path / "b", TrainRecipe(device="cuda"), progress=False)
