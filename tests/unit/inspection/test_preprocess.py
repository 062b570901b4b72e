import numpy as np
import cv2
import pytest

from inspection.errors import CorruptImageError
from inspection.input_spec import ColourOrder, InputLayout, InputSpec, ResizeMode, ShrinkMode, default_input_spec
from inspection.preprocess import _resize_to, prepare, preprocess, to_model_input


def spec(**overrides) -> InputSpec:
    return default_input_spec(32, 3).model_copy(update=overrides)


@pytest.fixture
def rgb_frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", list(ResizeMode))
def test_prepare_gives_model_size_for_every_resize_mode(rgb_frame, mode):
    out = prepare(rgb_frame, spec(resize_mode=mode))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_letterbox_pads_with_black_and_keeps_aspect(rgb_frame):
    out = prepare(np.full((20, 40, 3), 200, np.uint8), spec(resize_mode=ResizeMode.LETTERBOX))
    assert out[0].max() == 0 and out[-1].max() == 0  # top and bottom rows are padding
    assert out[16, 16, 0] == 200


def test_grey_spec_turns_colour_into_one_channel(rgb_frame):
    grey_spec = default_input_spec(32, 1)
    out = prepare(rgb_frame, grey_spec)
    assert out.shape == (32, 32, 1)


def test_colour_spec_accepts_grey_frames():
    out = prepare(np.full((40, 40), 77, np.uint8), spec())
    assert out.shape == (32, 32, 3) and (out == 77).all()


def test_bgr_order_swaps_channels():
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[..., 0] = 255  # red in RGB
    out = prepare(frame, spec(colour_order=ColourOrder.BGR))
    assert out[..., 2].min() == 255 and out[..., 0].max() == 0


def test_prepare_is_deterministic(rgb_frame):
    assert np.array_equal(prepare(rgb_frame, spec()), prepare(rgb_frame.copy(), spec()))


def test_nchw_float_layout_normalises_like_the_formula(rgb_frame):
    float_spec = spec(layout=InputLayout.NCHW_FLOAT32)
    out = preprocess(rgb_frame, float_spec)
    prepared = prepare(rgb_frame, float_spec).astype(np.float32) / 255.0
    expected = ((prepared - np.array(float_spec.mean, np.float32)) / np.array(float_spec.std, np.float32)).transpose(2, 0, 1)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("channels, mean, std", [(3, None, None), (1, None, None), (3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))])
def test_the_lookup_table_gives_the_formulas_float32_values_bit_for_bit(channels, mean, std):
    float_spec = default_input_spec(16, channels).model_copy(update={"layout": InputLayout.NCHW_FLOAT32})
    if mean is not None:
        float_spec = float_spec.model_copy(update={"mean": mean, "std": std})
    every_value = np.arange(256 * 2, dtype=np.uint16).astype(np.uint8)  # each uint8 value twice
    batch = np.random.default_rng(1).permutation(np.repeat(every_value, channels)).reshape(2, 16, 16, channels)
    scaled = batch.astype(np.float32) * np.float32(1.0 / 255.0)
    expected = ((scaled - np.asarray(float_spec.mean, np.float32)) / np.asarray(float_spec.std, np.float32)).transpose(0, 3, 1, 2)
    out = to_model_input(batch, float_spec)
    assert out.dtype == np.float32 and out.shape == (2, channels, 16, 16) and out.flags.c_contiguous
    assert np.array_equal(out, expected)


def test_uint8_layout_is_passed_through_unchanged(rgb_frame):
    batch = prepare(rgb_frame, spec())[None]
    assert to_model_input(batch, spec()) is batch


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10), np.float32), np.zeros((2, 10, 10, 3), np.uint8)],
)
def test_bad_frames_are_refused_with_a_clear_error(bad):
    with pytest.raises(CorruptImageError, match="expected uint8"):
        prepare(bad, spec())


def test_spec_rejects_inconsistent_channels():
    with pytest.raises(ValueError, match="colour_order"):
        InputSpec(size_px=32, channels=1, colour_order=ColourOrder.RGB, mean=(0.5,), std=(0.5,))


@pytest.mark.parametrize(("factor", "out_hw"), [(3, (128, 128)), (3, (20, 30)), (5, (16, 24)), (7, (9, 9))])
@pytest.mark.parametrize("channels", [1, 3])
def test_odd_whole_number_shrink_is_inter_area_byte_for_byte(factor, out_hw, channels):
    # The fast path must not change a pixel: bundles were trained and calibrated on INTER_AREA.
    height, width = out_hw
    shape = (height * factor, width * factor) + ((channels,) if channels == 3 else ())
    for seed in range(5):
        image = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
        expected = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        resized = _resize_to(image, width, height, ShrinkMode.AREA)
        assert resized.flags.c_contiguous and np.array_equal(resized, expected)


@pytest.mark.parametrize(("in_hw", "out_hw"), [((256, 256), (128, 128)), ((384, 384), (100, 100)), ((384, 390), (128, 128))])
def test_other_shrinks_still_use_inter_area(in_hw, out_hw):
    image = np.random.default_rng(0).integers(0, 256, size=in_hw + (3,), dtype=np.uint8)
    expected = cv2.resize(image, out_hw[::-1], interpolation=cv2.INTER_AREA)
    assert np.array_equal(_resize_to(image, out_hw[1], out_hw[0], ShrinkMode.AREA), expected)


@pytest.mark.parametrize(("in_hw", "top_left", "factor"), [
    ((288, 288), (0, 0), 2),  # 2.25: block means of 2 (144 px), then bilinear
    ((389, 388), (1, 0), 3),  # the centred multiple of 3 (387 px) is kept: 129 px, then bilinear
    ((384, 384), (0, 0), 3),  # a whole factor: block means alone
])
def test_box_then_linear_is_block_means_by_the_whole_factor_then_bilinear(in_hw, top_left, factor):
    image = np.random.default_rng(1).integers(0, 256, size=in_hw + (3,), dtype=np.uint8)
    side = (min(in_hw) // factor) * factor
    top, left = top_left
    blocks = image[top : top + side, left : left + side].reshape(side // factor, factor, side // factor, factor, 3)
    means = np.floor(blocks.astype(np.float64).mean(axis=(1, 3)) + 0.5).astype(np.uint8)  # no ties with k*k odd; up with 4
    expected = means if side == 3 * 128 else cv2.resize(means, (128, 128), interpolation=cv2.INTER_LINEAR)
    resized = _resize_to(image, 128, 128, ShrinkMode.BOX_THEN_LINEAR)
    assert resized.shape == (128, 128, 3) and np.array_equal(resized, expected)


def test_box_then_linear_under_a_factor_of_two_is_bilinear_alone():
    image = np.random.default_rng(2).integers(0, 256, size=(134, 134), dtype=np.uint8)
    expected = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(_resize_to(image, 128, 128, ShrinkMode.BOX_THEN_LINEAR), expected)


def test_a_spec_without_a_shrink_mode_is_area_as_bundles_before_it_were_trained():
    stored = default_input_spec(32, 3).model_dump(mode="json")
    del stored["shrink"]
    assert InputSpec.model_validate(stored).shrink == ShrinkMode.AREA
