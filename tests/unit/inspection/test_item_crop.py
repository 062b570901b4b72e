import cv2
import numpy as np
import pytest

from inspection.input_spec import default_input_spec
from inspection.item_crop import _median_per_column, crop_around_item, locate_item
from inspection.preprocess import prepare


def belt_with_tablet(centre_xy: tuple[int, int], size_wh=(640, 480), radius_px=110, grey=False, fragment=True) -> np.ndarray:
    """A dark textured belt with a bright round tablet, and a small fragment off to one side."""
    width, height = size_wh
    rng = np.random.default_rng(1)
    frame = rng.integers(40, 75, size=(height, width, 3), dtype=np.uint8)
    cv2.circle(frame, centre_xy, radius_px, (235, 232, 228), -1)
    if fragment:
        cv2.circle(frame, (centre_xy[0] - radius_px - 30, centre_xy[1]), 8, (235, 232, 228), -1)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if grey else frame


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("centre", [(320, 240), (200, 150), (470, 330)])
def test_locates_the_tablet_not_its_fragment(centre, grey):
    item = locate_item(belt_with_tablet(centre, grey=grey))
    step = 480 // 64
    assert abs(item.centre_x_px - centre[0]) <= step and abs(item.centre_y_px - centre[1]) <= step
    assert abs(item.extent_px - 220) <= 2 * step


def test_crop_is_square_of_the_share_and_centred_on_the_item():
    frame = belt_with_tablet((250, 200))
    crop = crop_around_item(frame, 0.8)
    assert crop.shape == (384, 384, 3)
    rows, cols = np.nonzero(crop[:, :, 0] > 200)
    assert abs(rows.mean() - 192) < 10 and abs(cols.mean() - 192 + 2) < 12  # the fragment pulls a little


def test_item_at_the_edge_gives_a_crop_inside_the_frame():
    frame = belt_with_tablet((600, 450), radius_px=60)
    crop = crop_around_item(frame, 0.5)
    assert crop.shape == (240, 240, 3)
    assert np.shares_memory(crop, frame)
    assert (crop[-1, -1] == frame[-1, -1]).all()  # pushed against the bottom-right corner


def test_an_empty_frame_gives_its_centre():
    item = locate_item(np.full((480, 640, 3), 60, np.uint8))
    assert (item.centre_x_px, item.centre_y_px, item.extent_px) == (319.5, 239.5, 0.0)


def test_an_item_larger_than_the_set_square_gets_a_larger_crop_not_a_cut_rim():
    frame = belt_with_tablet((320, 240), radius_px=180, fragment=False)
    crop = crop_around_item(frame, 0.5)
    assert crop.shape[0] == crop.shape[1] >= 360 * 1.1
    bright = crop[:, :, 0] > 200
    assert not bright[0].any() and not bright[-1].any() and not bright[:, 0].any() and not bright[:, -1].any()


def test_prepare_crops_before_resizing_and_is_deterministic():
    frame = belt_with_tablet((200, 300))
    spec = default_input_spec(96, 3, item_crop_fraction=0.8)
    first = prepare(frame, spec)
    expected = cv2.resize(crop_around_item(frame, 0.8), (96, 96), interpolation=cv2.INTER_AREA)
    assert (first == expected).all()
    assert (prepare(frame.copy(), spec) == first).all()


def test_crop_share_out_of_range_is_refused():
    with pytest.raises(ValueError, match="item_crop_fraction"):
        default_input_spec(96, 3, item_crop_fraction=1.5)


@pytest.mark.parametrize("rows", [1, 2, 3, 636, 637])
@pytest.mark.parametrize("channels", [1, 3])
def test_background_median_equals_numpy_median(rows: int, channels: int) -> None:
    # The crop must not move when the median's implementation does: bundles were trained on it.
    values = np.random.default_rng(rows * channels).integers(0, 256, size=(rows, channels), dtype=np.uint8)
    median = _median_per_column(values)
    assert median.dtype == np.float64 and np.array_equal(median, np.median(values, axis=0))
