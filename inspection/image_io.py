"""Decode image files into the one in-memory form everything uses: uint8, HxW (grey) or HxWx3 (RGB)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from isal import isal_zlib

from inspection.errors import CorruptImageError

# A file that fails to decode is reported once, by us, naming it and the fix; OpenCV's own warning
# lines for it would only add noise to stderr's one-line contract. Its errors still show.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def is_canonical_image(value: object) -> bool:
    """True for the in-memory form everything takes: a uint8 HxW (grey) or HxWx3 (RGB) array."""
    return (isinstance(value, np.ndarray) and value.dtype == np.uint8
            and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] == 3)))


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Read and decode one image file. Raises CorruptImageError naming the file when it cannot."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CorruptImageError(f"cannot read image {path}: {exc.strerror}. Check the path and permissions.") from None
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    if not data:
        raise CorruptImageError(f"image {name} is empty (0 bytes). Replace or remove the file.")
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha so that we convert them deliberately below.
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise CorruptImageError(f"image {name} cannot be decoded (corrupt or not an image). Replace or remove the file.")
    return to_canonical_image(decoded, name, bgr=True)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_damage(data: bytes) -> str | None:
    """Why a PNG file is damaged (a chunk's CRC, a cut-off file), or None: checked before decoding where
    files are scanned once (dataset indexing), because libpng prints its own error line on stderr for
    such a file. About 0.1 ms per 150 KB; not on the station's per-frame path."""
    if not data.startswith(_PNG_SIGNATURE):
        return None  # not a PNG: the decoder judges it
    view, offset = memoryview(data), len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length = int.from_bytes(view[offset : offset + 4], "big")
        end = offset + 12 + length
        if end > len(data):
            break
        if zlib.crc32(view[offset + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            return f"chunk {bytes(view[offset + 4 : offset + 8]).decode('latin-1')!r} fails its CRC"
        if view[offset + 4 : offset + 8] == b"IEND":
            return None
        offset = end
    return "the file is cut off before its end"


def to_canonical_image(array: np.ndarray, name: str, bgr: bool = False) -> np.ndarray:
    """Convert a decoded array (any of uint8/uint16/float, 1/3/4 channels) to uint8 grey or RGB."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise CorruptImageError(
            f"image {name} has shape {array.shape}; expected HxW, HxWx3 or HxWx4. Convert it to grey or RGB."
        )
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise CorruptImageError(f"image {name} is only {array.shape[1]}x{array.shape[0]} px. Replace it.")
    array = _to_uint8(array, name)
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_RGBA2RGB)
        if bgr:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # Keep the full 16-bit range: scale, do not clip, so that 12-bit camera data stays visible.
        return (array >> 8).astype(np.uint8)
    if array.dtype in (np.float32, np.float64):
        return np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise CorruptImageError(f"image {name} has pixel type {array.dtype}; expected 8- or 16-bit. Convert it.")


# PNG encodings, both lossless, written here rather than by libpng: its deflate (zlib) codes about
# 150 MB/s, so a 640x480 frame took 7.7 ms of the station's cores, where ISA-L's level-1 deflate
# (`isal`) takes 2.0 ms of the 2.3 ms below.
# "fast": each row as its difference from the pixel to its left (the SUB filter), deflated by
#   ISA-L at level 1. A synthetic 640x480 line frame: 2.3 ms and 517 KiB, against 7.7 ms and
#   497 KiB for libpng at zlib level 1 with run-length matching (the previous "fast").
# "none": stored deflate blocks, the raw frame's size, about 0.9 ms: for a station whose cores
#   matter more than disk.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SUB_FILTER, _PNG_NO_FILTER = 1, 0
_PNG_CODERS = {
    "fast": (_PNG_SUB_FILTER, lambda rows: isal_zlib.compress(rows, 1)),
    "none": (_PNG_NO_FILTER, lambda rows: zlib.compress(rows, 0)),
}
PNG_COMPRESSIONS = tuple(_PNG_CODERS)


def encode_png(image: np.ndarray, compression: str = "fast") -> bytes:
    """Lossless 8-bit PNG of a canonical image (grey or RGB); `compression` is one of PNG_COMPRESSIONS."""
    if compression not in _PNG_CODERS:
        raise ValueError(f"PNG compression {compression!r} is not one of {', '.join(PNG_COMPRESSIONS)}")
    if not is_canonical_image(image):
        raise CorruptImageError(f"cannot encode an image of shape {image.shape} and type {image.dtype} as PNG; expected uint8 HxW or HxWx3.")
    filter_type, deflate = _PNG_CODERS[compression]
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    pixels = np.ascontiguousarray(image).reshape(height, width * channels)
    # Each scanline is one filter-type byte and then its filtered bytes (PNG spec, section 7.3).
    scanlines = np.empty((height, width * channels + 1), np.uint8)
    scanlines[:, 0] = filter_type
    if filter_type == _PNG_SUB_FILTER:
        scanlines[:, 1 : 1 + channels] = pixels[:, :channels]
        np.subtract(pixels[:, channels:], pixels[:, :-channels], out=scanlines[:, 1 + channels :])  # modulo 256
    else:
        scanlines[:, 1:] = pixels
    colour_type = 0 if channels == 1 else 2  # greyscale, truecolour
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", deflate(scanlines.data)),
                     _png_chunk(b"IEND", b"")))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
