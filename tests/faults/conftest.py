"""Fixtures of the fault-injection suite: a handle on the live parts of a station run_station builds."""

from __future__ import annotations

import pytest

import station.runner as runner


@pytest.fixture
def live_source(monkeypatch):
    """The frame source run_station builds, so a test thread can break it mid-run."""
    built: list = []
    real_build = runner.build_source

    def build(*args, **kwargs):
        source = real_build(*args, **kwargs)
        built.append(source)
        return source

    monkeypatch.setattr(runner, "build_source", build)
    return built


@pytest.fixture
def live_pipeline(monkeypatch):
    """The StationPipeline run_station builds (its tally and gate), for assertions during a run."""
    built: list = []

    class Observed(runner.StationPipeline):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(runner, "StationPipeline", Observed)
    return built
