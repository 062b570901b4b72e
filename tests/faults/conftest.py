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


@pytest.fixture(scope="session")
def passing_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle with a policy under which most items pass (only 'broken' counts as a defect).

    The one-epoch model rejects nearly everything under its own policy, and a test that must see
    passes (no pass the PLC did not get, crash recovery of passes) would then prove nothing.
    """
    import shutil

    from inspection.bundle import read_meta, write_meta
    from inspection.file_manifest import write_manifest

    root = tmp_path_factory.mktemp("passing") / "bundle"
    shutil.copytree(tiny_bundle, root)
    meta = read_meta(root)
    good = tuple(name for name in meta.class_names if name != "broken")
    write_meta(root, meta.model_copy(update={"good_classes": good,
                                             "policy": meta.policy.model_copy(update={"good_classes": good})}))
    (root / "manifest.sha256").unlink()
    write_manifest(root)
    return root
