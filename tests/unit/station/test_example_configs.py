"""Every example in station/examples/ is a valid station config (a misspelt key there would mislead users)."""

from pathlib import Path

import pytest

from station.config import load_station_config

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "station" / "examples").glob("*.yaml"))


def test_there_is_an_example_for_each_source_kind():
    kinds = {load_station_config(path).source.kind for path in EXAMPLES}
    assert kinds == {"synthetic", "folder", "opencv", "pylon"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_loads_and_its_paths_are_resolved_beside_it(path):
    config = load_station_config(path)
    # They point at what `inspection demo` leaves in runs/demo, relative to the example's own folder.
    assert config.bundle.resolve() == path.parents[2] / "runs" / "demo" / "bundle"
