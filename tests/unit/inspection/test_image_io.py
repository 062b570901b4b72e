import io

import cv2
import numpy as np
import pytest

from inspection.errors import CorruptImageError
from inspection.image_io import decode_image, encode_png, read_image, to_canonical_image
from helpers.images import write_png


def test_colour_png_is_returned_as_rgb(tmp_path):
    image = np.zeros((8, 9, 3), np.uint8)
    image[..., 0] = 200  # red
    back = read_image(write_png(tmp_path / "a.png", image))
    assert back.shape == (8, 9, 3) and back[0, 0].tolist() == [200, 0, 0]


def test_sixteen_bit_grey_keeps_its_range(tmp_path):
    image = np.full((6, 6), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), image)
    back = read_image(tmp_path / "deep.png")
    assert back.dtype == np.uint8 and back.ndim == 2 and back[0, 0] == 40000 >> 8


def test_alpha_channel_is_dropped(tmp_path):
    bgra = np.zeros((5, 5, 4), np.uint8)
    bgra[..., 2] = 255
    bgra[..., 3] = 128
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    back = read_image(tmp_path / "alpha.png")
    assert back.shape == (5, 5, 3) and back[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".tiff"])
def test_other_formats_decode(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    cv2.imwrite(str(path), np.full((10, 10, 3), 100, np.uint8))
    assert read_image(path).shape == (10, 10, 3)


def test_truncated_png_is_a_corrupt_image(tmp_path):
    data = encode_png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(CorruptImageError, match="cannot be decoded"):
        decode_image(data[: len(data) // 3], "half.png")


def test_empty_file_names_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CorruptImageError, match="empty.png"):
        read_image(tmp_path / "empty.png")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorruptImageError, match="cannot read image"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("compression", ["fast", "none"])
@pytest.mark.parametrize("shape", [(17, 23, 3), (17, 23), (5, 2, 3), (2, 9)])
def test_png_round_trip_is_lossless(compression, shape):
    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decode_image(encode_png(image, compression), "x"), image)


@pytest.mark.parametrize("compression", ["fast", "none"])
def test_png_is_read_back_exactly_by_a_second_decoder_and_passes_the_chunk_check(compression):
    # Our own writer: libpng (through OpenCV, above) and Pillow's decoder must both read it back.
    from PIL import Image

    from inspection.image_io import png_damage

    image = np.random.default_rng(4).integers(0, 256, (31, 40, 3), dtype=np.uint8)
    data = encode_png(image, compression)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), image)
    assert png_damage(data) is None


def test_encoding_a_non_canonical_array_names_its_shape():
    with pytest.raises(CorruptImageError, match=r"\(4, 4, 4\)"):
        encode_png(np.zeros((4, 4, 4), np.uint8))


def test_fast_png_is_smaller_than_stored_on_a_smooth_image():
    image = np.tile(np.arange(64, dtype=np.uint8), (48, 1))[:, :, None].repeat(3, axis=2)
    assert len(encode_png(image, "fast")) < len(encode_png(image, "none")) / 4


def test_unknown_png_compression_is_refused():
    with pytest.raises(ValueError, match="not one of fast, none"):
        encode_png(np.zeros((4, 4), np.uint8), "zstd")


def test_unusable_shapes_are_refused():
    with pytest.raises(CorruptImageError, match="shape"):
        to_canonical_image(np.zeros((4, 4, 2), np.uint8), "two-channel")


def test_png_damage_names_a_bad_chunk_and_a_cut_off_file_and_passes_an_intact_one() -> None:
    from inspection.image_io import png_damage

    ok, buffer = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    intact = buffer.tobytes()
    assert png_damage(intact) is None
    flipped = bytearray(intact)
    flipped[200] ^= 0xFF
    assert png_damage(bytes(flipped)) == "chunk 'IDAT' fails its CRC"
    assert png_damage(intact[:300]) == "the file is cut off before its end"
    assert png_damage(b"not a png at all") is None  # the decoder judges other formats
