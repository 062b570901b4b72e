"""The thumbnail cache (as-is small images, parallel pages, background prefetch) and the label tab's paging."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from helpers.images import make_two_class_dataset, write_png
from training.labeling.browse import ItemFilter
from training.labeling.catalog import Catalog, build_catalog
from training.labeling.context import LabelSession
from training.labeling.label_tab import _page_of
from training.labeling.thumbnails import ThumbnailCache
from training.labeling.workspace import open_workspace


def large_images(folder: Path, count: int) -> list[tuple[str, Path, int, int]]:
    rng = np.random.default_rng(0)
    requests = []
    for i in range(count):
        path = write_png(folder / f"big_{i}.png", rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
        requests.append((f"{i:02d}" + "ab" * 31, path, 400, 300))
    return requests


def test_a_small_browser_image_is_served_as_it_is(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    small = write_png(tmp_path / "small.png", np.zeros((32, 48, 3), np.uint8))
    assert cache.get("ab" * 32, small, 48, 32) == small
    assert not (tmp_path / "thumbs").exists()  # nothing re-encoded, nothing written
    # Without a known size, or in a format the browser cannot show, a thumbnail is made as before.
    assert cache.get("cd" * 32, small) == cache.path_for("cd" * 32)
    tiff = tmp_path / "small.tiff"
    cv2.imwrite(str(tiff), np.zeros((32, 48, 3), np.uint8))
    assert cache.get("ef" * 32, tiff, 48, 32) == cache.path_for("ef" * 32)


def test_a_page_made_in_parallel_matches_one_at_a_time(tmp_path: Path) -> None:
    requests = large_images(tmp_path / "images", 6)
    parallel = ThumbnailCache(tmp_path / "parallel").get_many(requests)
    serial_cache = ThumbnailCache(tmp_path / "serial")
    serial = [serial_cache.get(*r) for r in requests]
    assert [p.name for p in parallel] == [p.name for p in serial] == [f"{r[0]}.jpg" for r in requests]
    for a, b in zip(parallel, serial):
        assert a.read_bytes() == b.read_bytes()
        assert max(cv2.imread(str(a)).shape[:2]) == 128


def test_prefetch_makes_the_thumbnails_in_the_background(tmp_path: Path) -> None:
    requests = large_images(tmp_path / "images", 4)
    cache = ThumbnailCache(tmp_path / "thumbs")
    cache.prefetch(requests + requests)  # asked twice: made once
    deadline = time.monotonic() + 30
    while not all(cache.path_for(r[0]).is_file() for r in requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(cache.path_for(r[0]).is_file() for r in requests)
    assert not list((tmp_path / "thumbs").rglob("*.tmp"))


def test_paging_clamps_the_position_to_the_filtered_total(tmp_path: Path) -> None:
    data = make_two_class_dataset(tmp_path / "data", per_class=5, size_px=32)
    catalog = Catalog.open(open_workspace(data, tmp_path / "ws"))
    build_catalog(catalog, progress=False)
    ctx = SimpleNamespace(catalog=catalog, page_size=4)
    session = LabelSession(ItemFilter(), position=5)
    start, grid = _page_of(ctx, session)
    assert (start, len(grid.item_ids), grid.total, session.position) == (4, 4, 10, 5)
    session.position = 42  # past the end: the last image, on the last page
    start, grid = _page_of(ctx, session)
    assert (start, len(grid.item_ids), session.position) == (8, 2, 9)
    session = LabelSession(ItemFilter(label="good"), position=7)
    start, grid = _page_of(ctx, session)
    assert (start, len(grid.item_ids), grid.total, session.position) == (4, 1, 5, 4)
