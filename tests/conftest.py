from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    path = REPO.parent / "shared" / "datasets"
    if not (path / "pill_defects").is_dir():
        pytest.skip("../shared/datasets/pill_defects is not beside this checkout")
    return path
