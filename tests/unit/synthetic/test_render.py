"""The synthetic tablet renderer: determinism, image format, visible defects, label stream."""

from __future__ import annotations

import random
from collections import Counter

import cv2
import numpy as np
import pytest

from inspection.errors import ConfigError
from inspection.synthetic import CLASSES, DEFECT_CLASSES, RenderedItem, label_for_index, render_item
from inspection.synthetic.render import render_with_mask


def test_class_names_and_order_are_fixed() -> None:
    assert DEFECT_CLASSES == ("chipped", "cracked", "spot", "discoloured", "broken", "foreign_particle")
    assert CLASSES == ("good",) + DEFECT_CLASSES


@pytest.mark.parametrize("label", CLASSES)
def test_same_arguments_give_identical_bytes(label: str) -> None:
    first = render_item(3, 17, label, 224, 224)
    second = render_item(3, 17, label, 224, 224)
    assert first.image.tobytes() == second.image.tobytes()


def test_other_seed_or_index_gives_another_image() -> None:
    base = render_item(3, 17, "good", 224, 224).image
    assert not np.array_equal(base, render_item(4, 17, "good", 224, 224).image)
    assert not np.array_equal(base, render_item(3, 18, "good", 224, 224).image)


def test_global_random_state_is_neither_used_nor_changed() -> None:
    np.random.seed(1)
    random.seed(1)
    first = render_item(0, 2, "spot", 224, 224).image
    after_numpy, after_python = np.random.random(), random.random()
    np.random.seed(1)
    random.seed(1)
    expected_numpy, expected_python = np.random.random(), random.random()
    assert (after_numpy, after_python) == (expected_numpy, expected_python)
    np.random.seed(99)
    random.seed(99)
    assert np.array_equal(first, render_item(0, 2, "spot", 224, 224).image)


# 2100 x 64 is wider than the cached textures: the mirrored-texture and direct-noise paths.
@pytest.mark.parametrize(("width_px", "height_px"), [(224, 224), (640, 480), (32, 32), (120, 300), (2100, 64)])
def test_image_is_uint8_rgb_contiguous_of_the_asked_shape(width_px: int, height_px: int) -> None:
    item = render_item(0, 5, "cracked", width_px, height_px)
    assert isinstance(item, RenderedItem)
    assert item.label == "cracked"
    assert item.image.dtype == np.uint8
    assert item.image.shape == (height_px, width_px, 3)
    assert item.image.flags["C_CONTIGUOUS"]
    assert 10 < item.image.mean() < 245  # neither black nor blown out


@pytest.mark.parametrize(("width_px", "height_px"), [(224, 224), (640, 480)])
def test_whole_tablet_is_in_frame_and_sized_from_the_short_side(width_px: int, height_px: int) -> None:
    for index in range(25):
        _, coverage = render_with_mask(9, index, "good", width_px, height_px)
        solid = coverage > 0.5
        assert not (solid[0].any() or solid[-1].any() or solid[:, 0].any() or solid[:, -1].any())
        rows, cols = np.nonzero(solid)
        points = np.stack([cols, rows], 1).astype(np.float32)
        (_, _), (side_a, side_b), _ = cv2.minAreaRect(points)
        length_fraction = max(side_a, side_b) / min(width_px, height_px)
        assert 0.42 <= length_fraction <= 0.72, (index, length_fraction)


def _changed_pixels_near_tablet(label: str, index: int) -> int:
    good, coverage = render_with_mask(5, index, "good", 224, 224)
    defect, _ = render_with_mask(5, index, label, 224, 224)
    difference = np.abs(defect.astype(np.int16) - good.astype(np.int16)).max(axis=2)
    near_tablet = cv2.dilate((coverage > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return int(((difference > 25) & near_tablet).sum())


@pytest.mark.parametrize("label", DEFECT_CLASSES)
def test_every_defect_visibly_changes_the_tablet_of_the_same_scene(label: str) -> None:
    # Scene and noise come from (seed, index) alone, so the difference is the defect itself.
    changed = [_changed_pixels_near_tablet(label, index) for index in range(12)]
    assert min(changed) >= 12, changed


def test_render_item_and_render_with_mask_agree() -> None:
    good, _ = render_with_mask(5, 3, "good", 224, 224)
    assert np.array_equal(good, render_item(5, 3, "good", 224, 224).image)


def test_unknown_label_is_a_config_error_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        render_item(0, 0, "scratched", 224, 224)
    message = str(error.value)
    assert "scratched" in message
    assert all(label in message for label in CLASSES)


@pytest.mark.parametrize(("width_px", "height_px"), [(16, 224), (224, 5000), (224.0, 224), (224, True)])
def test_unusable_frame_size_is_a_config_error(width_px, height_px) -> None:
    with pytest.raises(ConfigError, match="px"):
        render_item(0, 0, "good", width_px, height_px)


def test_negative_seed_or_index_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="seed"):
        render_item(-1, 0, "good", 224, 224)
    with pytest.raises(ConfigError, match="index"):
        render_item(0, -1, "good", 224, 224)


def test_label_stream_has_the_asked_defect_rate_and_spreads_defects_evenly() -> None:
    labels = [label_for_index(7, index, 0.02) for index in range(20_000)]
    counts = Counter(labels)
    defects = 20_000 - counts["good"]
    assert 320 <= defects <= 480  # 400 expected, 4 standard deviations either way
    assert set(counts) == set(CLASSES)
    assert all(30 <= counts[label] <= 110 for label in DEFECT_CLASSES), counts
    assert labels[:500] == [label_for_index(7, index, 0.02) for index in range(500)]
    assert labels[:2000] != [label_for_index(8, index, 0.02) for index in range(2000)]


def test_label_stream_edges_and_bad_rates() -> None:
    assert {label_for_index(0, index, 0.0) for index in range(500)} == {"good"}
    assert "good" not in {label_for_index(0, index, 1.0) for index in range(500)}
    for rate in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="defect_rate"):
            label_for_index(0, 0, rate)
