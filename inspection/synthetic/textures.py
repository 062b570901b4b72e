"""Per-process caches of noise textures and coordinate grids.

Drawing fresh noise for every frame costs more than the rest of a render (about 2 ms for one
224 x 224 x 3 normal draw), so each process builds a few large textures once, from fixed seeds,
and every render takes a random crop. A texture depends only on its kind and its size bucket,
never on which process built it or in what order, so renders stay deterministic.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

_TEXTURE_SEED = 0x5EED_7E47
_MIN_SIDE_PX = 256
_MAX_SIDE_PX = 2048  # 16 MB a texture; bigger frames mirror the texture outwards instead

_textures: dict[tuple[str, int, int], np.ndarray] = {}
_grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _bucket_px(needed_px: int) -> int:
    """Power of two with room for crops to move around (>= 1.5x the needed size), capped."""
    side_px = _MIN_SIDE_PX
    while side_px < 1.5 * needed_px and side_px < _MAX_SIDE_PX:
        side_px *= 2
    return side_px


def _unit_std(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def _blurred(rng: np.random.Generator, shape: tuple[int, int], sigma_x: float, sigma_y: float) -> np.ndarray:
    """Gaussian-filtered white noise. Wide blurs run on a coarser grid and are resized up: the
    result is as smooth, and a 2048 px texture takes milliseconds instead of seconds."""
    step_x, step_y = max(1, int(sigma_x / 3)), max(1, int(sigma_y / 3))
    coarse_shape = (-(-shape[0] // step_y), -(-shape[1] // step_x))
    noise = rng.standard_normal(coarse_shape, dtype=np.float32)
    field = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma_x / step_x, sigmaY=sigma_y / step_y)
    if (step_x, step_y) != (1, 1):
        field = cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return _unit_std(field)


def _make_grain(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    # Compressed powder: fine grain plus a faint blotchiness a few pixels across.
    return _unit_std(_blurred(rng, shape, 0.7, 0.7) + 0.5 * _blurred(rng, shape, 3.0, 3.0))


def _make_belt(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    # Rubber/PVC belt: fine grit, soft wear patches and streaks along the running direction (x).
    return _unit_std(
        0.6 * _blurred(rng, shape, 0.8, 0.8)
        + 0.6 * _blurred(rng, shape, 6.0, 6.0)
        + 0.7 * _blurred(rng, shape, 14.0, 0.8)
    )


def _make_foil(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    # Brushed aluminium: long thin brush lines plus broad wrinkles of the lidding foil.
    return _unit_std(
        1.0 * _blurred(rng, shape, 30.0, 0.7)
        + 0.3 * _blurred(rng, shape, 0.7, 0.7)
        + 0.9 * _blurred(rng, shape, 40.0, 25.0)
    )


def _make_sensor(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


_MAKERS = {"grain": _make_grain, "belt": _make_belt, "foil": _make_foil, "sensor": _make_sensor}


def texture(kind: str, height_px: int, width_px: int) -> np.ndarray:
    """A cached float32 zero-mean unit-std texture at least 1.5x as large as asked."""
    shape = (_bucket_px(height_px), _bucket_px(width_px))
    key = (kind, *shape)
    if key not in _textures:
        rng = np.random.Generator(np.random.PCG64([_TEXTURE_SEED, zlib.crc32(kind.encode()), *shape]))
        _textures[key] = _MAKERS[kind](rng, shape)
    return _textures[key]


def random_crop(kind: str, rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """A (height_px, width_px) view into the cached texture at a random offset and flip."""
    tex = texture(kind, height_px, width_px)
    crop_h, crop_w = min(height_px, tex.shape[0]), min(width_px, tex.shape[1])
    top = int(rng.integers(0, tex.shape[0] - crop_h + 1))
    left = int(rng.integers(0, tex.shape[1] - crop_w + 1))
    flip_y, flip_x = rng.integers(0, 2, size=2)
    crop = tex[top : top + crop_h, left : left + crop_w][:: -1 if flip_y else 1, :: -1 if flip_x else 1]
    if (crop_h, crop_w) != (height_px, width_px):
        crop = np.pad(crop, ((0, height_px - crop_h), (0, width_px - crop_w)), mode="symmetric")
    return crop


def sensor_noise(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """Unit normal noise (height_px, width_px, 3): a strided view into the cached pool (no copy;
    OpenCV takes it as it is). White noise needs no flips to look different at every offset."""
    pool = texture("sensor", height_px, 3 * width_px)
    if pool.shape[0] < height_px or pool.shape[1] < 3 * width_px:
        return rng.standard_normal((height_px, width_px, 3), dtype=np.float32)  # frames over ~680 px wide
    top = int(rng.integers(0, pool.shape[0] - height_px + 1))
    left = int(rng.integers(0, pool.shape[1] - 3 * width_px + 1))
    return pool[top : top + height_px, left : left + 3 * width_px].reshape(height_px, width_px, 3)


def centred_grid(rows_px: int, cols_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(x_px, y_px) float32 grids of a sprite, zero at its centre; cached and read-only."""
    key = (rows_px, cols_px)
    if key not in _grids:
        x_px, y_px = np.meshgrid(np.arange(cols_px, dtype=np.float32) - (cols_px - 1) / 2.0,
                                 np.arange(rows_px, dtype=np.float32) - (rows_px - 1) / 2.0)
        x_px.setflags(write=False)
        y_px.setflags(write=False)
        _grids[key] = (x_px, y_px)
    return _grids[key]


def unit_axes(height_px: int, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from -1 to 1 across a frame, shaped (1, W) and (H, 1) for broadcasting; cached."""
    key = (-height_px, -width_px)  # negative: a separate key space from the sprite grids
    if key not in _grids:
        xs = np.linspace(-1.0, 1.0, width_px, dtype=np.float32)[None, :]
        ys = np.linspace(-1.0, 1.0, height_px, dtype=np.float32)[:, None]
        xs.setflags(write=False)
        ys.setflags(write=False)
        _grids[key] = (xs, ys)
    return _grids[key]


def low_frequency(rng: np.random.Generator, height_px: int, width_px: int, cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1] with `cells` blobs across: cheap mottling and wobble."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (width_px, height_px), interpolation=cv2.INTER_CUBIC) * 0.5
