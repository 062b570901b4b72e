from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    path = REPO.parent / "shared" / "datasets"
    if not (path / "pill_defects").is_dir():
        pytest.skip("../shared/datasets/pill_defects is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real bundle trained for one epoch on a tiny synthetic set: plumbing, not quality."""
    from inspection.synthetic import write_dataset
    from training.pipeline import train_bundle
    from training.recipe import TrainRecipe

    root = tmp_path_factory.mktemp("tiny-bundle")
    write_dataset(root / "data", count_per_class=10, seed=7, size_px=64, progress=False)
    recipe = TrainRecipe(image_size_px=64, epochs=1, batch_size=16, device="cpu")
    train_bundle(root / "data", root / "bundle", recipe, progress=False)
    return root / "bundle"


@pytest.fixture()
def tiny_bundle_copy(tiny_bundle, tmp_path) -> tuple[Path, Path]:
    """A private copy of the tiny bundle (for tests that reseal or edit it) and the data it was trained on."""
    import shutil

    shutil.copytree(tiny_bundle, tmp_path / "bundle")
    return tmp_path / "bundle", tiny_bundle.parent / "data"
