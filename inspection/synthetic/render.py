"""Render one top-down line-camera frame of one tablet, deterministically.

The scene (tablet, pose, background, lighting, blur, sensor noise) comes from a random stream
keyed by (seed, index) alone; the defect from a second stream keyed by (seed, index, label). So
`render_item(s, i, "cracked", ...)` is the very same frame as `render_item(s, i, "good", ...)`
with a crack added: tests can compare the two, and nothing else in the frame hints at the class.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from inspection.errors import ConfigError
from inspection.synthetic import textures
from inspection.synthetic.backgrounds import sample_background
from inspection.synthetic.defects import PAINTERS
from inspection.synthetic.tablet import LIGHT_WORLD_XYZ, Shape, TabletSpec, build_sprite, sample_tablet, shade_sprite

# Bump when a change alters the pixels rendered for the same arguments.
GENERATOR_VERSION = "1"

DEFECT_CLASSES: tuple[str, ...] = ("chipped", "cracked", "spot", "discoloured", "broken", "foreign_particle")
CLASSES: tuple[str, ...] = ("good",) + DEFECT_CLASSES

MIN_SIZE_PX = 32
MAX_SIZE_PX = 4096
_SCENE_STREAM = 0x5CE4E  # keeps the scene stream apart from every label's crc32


@dataclass(frozen=True, slots=True)
class RenderedItem:
    image: np.ndarray  # uint8, (H, W, 3), RGB, C-contiguous
    label: str  # one of CLASSES


def _label_key(label: str) -> int:
    return zlib.crc32(label.encode("utf-8"))


def check_label(label: str) -> None:
    if label not in CLASSES:
        raise ConfigError(f"unknown label {label!r}; expected one of {', '.join(CLASSES)}")


def check_size_px(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
        MIN_SIZE_PX <= value <= MAX_SIZE_PX
    ):
        raise ConfigError(
            f"{name}={value!r} is not usable; expected a whole number of pixels from {MIN_SIZE_PX} to "
            f"{MAX_SIZE_PX}, for example 224"
        )


def label_for_index(seed: int, index: int, defect_rate: float) -> str:
    """Class of item `index` of a line stream: good with probability 1 - defect_rate, else a
    defect class chosen uniformly. Deterministic in (seed, index, defect_rate)."""
    if not (isinstance(defect_rate, (int, float)) and 0.0 <= defect_rate <= 1.0):
        raise ConfigError(f"defect_rate={defect_rate!r} is not a probability; expected a number from 0 to 1, e.g. 0.02")
    # A keyed hash instead of a Generator per item: 20x cheaper, and stable across numpy versions.
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=16, person=b"synth-label").digest()
    draw = int.from_bytes(digest[:8], "little") / 2.0**64
    if draw >= defect_rate:
        return "good"
    return DEFECT_CLASSES[int.from_bytes(digest[8:], "little") % len(DEFECT_CLASSES)]


def render_item(seed: int, index: int, label: str, width_px: int, height_px: int) -> RenderedItem:
    """One frame of one tablet of class `label`; identical bytes for identical arguments."""
    image, _ = render_with_mask(seed, index, label, width_px, height_px)
    return RenderedItem(image=image, label=label)


def render_with_mask(seed: int, index: int, label: str, width_px: int, height_px: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame and the tablet's coverage (H, W) float32 0..1 (tablet plus anything on it)."""
    check_label(label)
    check_size_px("width_px", width_px)
    check_size_px("height_px", height_px)
    width_px, height_px = int(width_px), int(height_px)
    scene_rng = np.random.Generator(np.random.PCG64([seed, index, _SCENE_STREAM]))
    defect_rng = np.random.Generator(np.random.PCG64([seed, index, _label_key(label)]))

    spec = sample_tablet(scene_rng, width_px, height_px)
    sprite = build_sprite(spec, scene_rng, min(width_px, height_px))
    background = sample_background(scene_rng, spec, width_px, height_px)
    PAINTERS[label](sprite, defect_rng)

    rgba = cv2.warpAffine(shade_sprite(sprite), _placement(spec, sprite.size_px), (width_px, height_px),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    coverage = np.ascontiguousarray(rgba[..., 3])
    frame = background.rgb
    _cast_shadow(scene_rng, frame, coverage, spec)
    frame *= (1.0 - coverage)[..., None]
    frame += rgba[..., :3]
    _add_highlight(scene_rng, frame, coverage, spec)
    if background.pocket is not None:
        # The clear blister film over the pocket lifts everything under it a little.
        frame += (scene_rng.uniform(4.0, 14.0) * background.pocket)[..., None]
    return _camera(scene_rng, frame), coverage


def _placement(spec: TabletSpec, sprite_px: int) -> np.ndarray:
    """Affine map from sprite pixels to frame pixels: rotate about the sprite centre, then move."""
    theta = math.radians(spec.angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    half = (sprite_px - 1) / 2.0
    return np.float32([
        [c, -s, spec.centre_x_px - (c * half - s * half)],
        [s, c, spec.centre_y_px - (s * half + c * half)],
    ])


def _cast_shadow(rng: np.random.Generator, frame: np.ndarray, coverage: np.ndarray, spec: TabletSpec) -> None:
    """Soft drop shadow away from the lamp, darkening what lies under and beside the tablet."""
    height_px, width_px = coverage.shape
    lx, ly, _ = LIGHT_WORLD_XYZ
    norm = math.hypot(lx, ly)
    offset_px = rng.uniform(0.025, 0.05) * spec.length_px
    move = np.float32([[1, 0, -lx / norm * offset_px], [0, 1, -ly / norm * offset_px]])
    shadow = cv2.warpAffine(coverage, move, (width_px, height_px))
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, rng.uniform(0.03, 0.06) * spec.length_px))
    frame *= (1.0 - rng.uniform(0.35, 0.6) * shadow)[..., None]


def _add_highlight(rng: np.random.Generator, frame: np.ndarray, coverage: np.ndarray, spec: TabletSpec) -> None:
    """Specular reflection of the lamp: a soft blob on the lamp side of a dome, a streak on a capsule."""
    strength = spec.gloss * rng.uniform(0.7, 1.0) * 255.0
    lx, ly, _ = LIGHT_WORLD_XYZ
    theta = math.radians(spec.angle_deg)
    axis = np.asarray((math.cos(theta), math.sin(theta)))
    towards = np.asarray((lx, ly)) / math.hypot(lx, ly)
    if spec.shape is Shape.CAPSULE:
        towards = towards - axis * float(towards @ axis)  # a cylinder reflects on its side, not its ends
        sigma_along, sigma_across = 0.30 * spec.length_px, 0.16 * spec.width_px
    else:
        sigma_along, sigma_across = 0.22 * spec.length_px, 0.22 * spec.width_px
    centre = np.asarray((spec.centre_x_px, spec.centre_y_px)) + towards * 0.45 * spec.half_width_px
    half = int(spec.half_length_px) + 3
    cx, cy = int(spec.centre_x_px), int(spec.centre_y_px)
    rows = slice(max(cy - half, 0), min(cy + half + 1, frame.shape[0]))
    cols = slice(max(cx - half, 0), min(cx + half + 1, frame.shape[1]))
    ys = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] - np.float32(centre[1])
    xs = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] - np.float32(centre[0])
    along = xs * np.float32(axis[0]) + ys * np.float32(axis[1])
    across = ys * np.float32(axis[0]) - xs * np.float32(axis[1])
    blob = np.exp(-0.5 * ((along / sigma_along) ** 2 + (across / sigma_across) ** 2))
    frame[rows, cols] += ((strength * blob) * coverage[rows, cols])[..., None]


def _camera(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
    """Lighting drift, white balance, optics blur and sensor noise, then 8-bit quantisation."""
    height_px, width_px, _ = frame.shape
    xs = np.linspace(-1.0, 1.0, width_px, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height_px, dtype=np.float32)[:, None]
    gx, gy = rng.uniform(-0.12, 0.12, size=2)
    gain = rng.uniform(0.85, 1.15) * (1.0 + gx * xs + gy * ys)
    white_balance = rng.uniform(0.96, 1.04, size=3).astype(np.float32)
    frame *= gain[..., None] * white_balance
    blur_sigma_px = rng.uniform(0.0, 1.0) * max(1.0, min(height_px, width_px) / 224.0) ** 0.5
    if blur_sigma_px > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), blur_sigma_px)
    noise_sigma = rng.uniform(1.0, 4.0)
    frame += noise_sigma * textures.sensor_noise(rng, height_px, width_px)
    frame += 0.5  # round to nearest on the cast below
    np.clip(frame, 0.0, 255.0, out=frame)
    return np.ascontiguousarray(frame.astype(np.uint8))
