"""Full garbage collections during a run walk only what the run created (see station/garbage_collection.py)."""

import gc

import pytest

from station.garbage_collection import startup_objects_frozen


def test_objects_existing_at_start_are_frozen_during_the_run_and_released_after():
    assert gc.get_freeze_count() == 0
    with startup_objects_frozen():
        assert gc.get_freeze_count() > 1000  # the interpreter, pytest and the station's imports
    assert gc.get_freeze_count() == 0


def test_a_failing_run_releases_them_too():
    with pytest.raises(RuntimeError), startup_objects_frozen():
        raise RuntimeError("the line stopped")
    assert gc.get_freeze_count() == 0
