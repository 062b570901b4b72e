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

_textures: dict[tuple[str, int, int], np.ndarray] = {}
_grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bucket_px(needed_px: int) -> int:
    """Power of two with room for crops to move around (>= 1.5x the needed size)."""
    side_px = _MIN_SIDE_PX
    while side_px < 1.5 * needed_px:
        side_px *= 2
    return side_px


def _unit_std(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def _blurred(rng: np.random.Generator, shape: tuple[int, int], sigma_x: float, sigma_y: float) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    return _unit_std(cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y))


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
    top = int(rng.integers(0, tex.shape[0] - height_px + 1))
    left = int(rng.integers(0, tex.shape[1] - width_px + 1))
    flip_y, flip_x = rng.integers(0, 2, size=2)
    crop = tex[top : top + height_px, left : left + width_px]
    return crop[:: -1 if flip_y else 1, :: -1 if flip_x else 1]


def sensor_noise(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """Unit normal noise of shape (height_px, width_px, 3), as a crop of the cached pool."""
    crop = random_crop("sensor", rng, height_px, 3 * width_px)
    return crop.reshape(height_px, width_px, 3)


def centred_grid(size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(x_px, y_px) float32 grids of a square sprite, zero at its centre; cached, do not modify."""
    if size_px not in _grids:
        axis = np.arange(size_px, dtype=np.float32) - (size_px - 1) / 2.0
        x_px, y_px = np.meshgrid(axis, axis)
        x_px.setflags(write=False)
        y_px.setflags(write=False)
        _grids[size_px] = (x_px, y_px)
    return _grids[size_px]


def low_frequency(rng: np.random.Generator, height_px: int, width_px: int, cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1] with `cells` blobs across: cheap mottling and wobble."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (width_px, height_px), interpolation=cv2.INTER_CUBIC) * 0.5
