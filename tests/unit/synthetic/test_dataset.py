"""write_dataset: layout, metadata, refusal to overwrite, all-or-nothing, worker independence."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import inspection.synthetic.dataset as dataset_module
from inspection.errors import ConfigError, OutputExistsError
from inspection.synthetic import CLASSES, GENERATOR_VERSION, render_item, write_dataset


def _png_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.png"))}


def test_layout_counts_and_synth_json(tmp_path: Path) -> None:
    out_dir = tmp_path / "synth"
    summary = write_dataset(out_dir, count_per_class=2, seed=3, size_px=64, workers=1, progress=False)

    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*CLASSES, "synth.json"])
    for class_index, label in enumerate(CLASSES):
        names = sorted(p.name for p in (out_dir / label).iterdir())
        assert names == [f"{label}_{position * 7 + class_index:06d}.png" for position in range(2)]
    assert json.loads((out_dir / "synth.json").read_text()) == summary
    assert summary["generator_version"] == GENERATOR_VERSION
    assert (summary["seed"], summary["size_px"], summary["count_per_class"], summary["total"]) == (3, 64, 2, 14)
    assert summary["counts"] == {label: 2 for label in CLASSES}
    assert summary["classes"] == list(CLASSES)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_each_file_is_the_lossless_render_named_by_its_index(tmp_path: Path) -> None:
    out_dir = tmp_path / "synth"
    write_dataset(out_dir, count_per_class=1, seed=5, size_px=96, workers=1, progress=False)
    for class_index, label in enumerate(CLASSES):
        stored = cv2.imread(str(out_dir / label / f"{label}_{class_index:06d}.png"), cv2.IMREAD_COLOR)
        expected = render_item(5, class_index, label, 96, 96).image
        assert np.array_equal(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB), expected)


def test_a_width_and_height_make_camera_sized_frames(tmp_path: Path) -> None:
    # A model should train on frames the size of its line's camera (station/geometry.py).
    out_dir = tmp_path / "synth"
    summary = write_dataset(out_dir, count_per_class=1, seed=5, size_px=(96, 64), workers=1, progress=False)
    assert summary["size_px"] == [96, 64] and (summary["image"]["width_px"], summary["image"]["height_px"]) == (96, 64)
    stored = cv2.imread(str(out_dir / "spot" / f"spot_{CLASSES.index('spot'):06d}.png"), cv2.IMREAD_COLOR)
    expected = render_item(5, CLASSES.index("spot"), "spot", 96, 64).image
    assert np.array_equal(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB), expected)


def test_refuses_a_non_empty_folder_and_deletes_nothing(tmp_path: Path) -> None:
    out_dir = tmp_path / "synth"
    out_dir.mkdir()
    keep = out_dir / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(OutputExistsError) as error:
        write_dataset(out_dir, count_per_class=1, size_px=64, workers=1, progress=False)
    assert "empty" in str(error.value) and "delete" in str(error.value)
    assert keep.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    out_dir = tmp_path / "synth"
    out_dir.mkdir()
    write_dataset(out_dir, count_per_class=1, size_px=64, workers=1, progress=False)
    assert len(_png_files(out_dir)) == len(CLASSES)


def test_a_failure_midway_leaves_no_half_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_render = dataset_module.render_item

    def render_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("disk on fire")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "render_item", render_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dataset(tmp_path / "synth", count_per_class=2, size_px=64, workers=1, progress=False)
    assert calls["n"] == 6
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"count_per_class": 0}, "count_per_class"), ({"size_px": 16}, "size_px"), ({"size_px": 5000}, "size_px"),
     ({"workers": 0}, "workers"), ({"seed": -3}, "seed"), ({"png_level": 10}, "png_level")],
)
def test_bad_arguments_are_config_errors_and_create_nothing(tmp_path: Path, kwargs: dict, word: str) -> None:
    arguments = {"count_per_class": 1, "size_px": 64, "workers": 1, "progress": False} | kwargs
    with pytest.raises(ConfigError, match=word):
        write_dataset(tmp_path / "synth", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_files_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    # 3 per class makes 21 images in 6 chunks, so two worker processes really share the work.
    write_dataset(tmp_path / "one", count_per_class=3, seed=11, size_px=64, workers=1, progress=False)
    write_dataset(tmp_path / "two", count_per_class=3, seed=11, size_px=64, workers=2, progress=False)
    one, two = _png_files(tmp_path / "one"), _png_files(tmp_path / "two")
    assert len(one) == 21
    assert one == two


def test_png_level_changes_the_file_size_not_the_pixels(tmp_path: Path) -> None:
    stored = write_dataset(tmp_path / "stored", count_per_class=1, seed=2, size_px=96, workers=1, progress=False)
    write_dataset(tmp_path / "small", count_per_class=1, seed=2, size_px=96, workers=1, progress=False, png_level=1)
    assert stored["image"]["png_zlib_level"] == 0
    for name, data in _png_files(tmp_path / "stored").items():
        small = (tmp_path / "small" / name).read_bytes()
        assert len(small) < 0.8 * len(data)
        decode = lambda raw: cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)  # noqa: E731
        assert np.array_equal(decode(small), decode(data))
