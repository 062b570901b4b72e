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
from inspection.synthetic import products, textures
from inspection.synthetic.backgrounds import sample_background
from inspection.synthetic.defects import PAINTERS
from inspection.synthetic.tablet import LIGHT_WORLD_XYZ, Shape, TabletSpec, build_sprite, sample_tablet, shade_sprite

# Bump when a change alters the pixels rendered for the same arguments.
GENERATOR_VERSION = "3"

DEFECT_CLASSES: tuple[str, ...] = ("chipped", "cracked", "spot", "discoloured", "broken", "foreign_particle")
CLASSES: tuple[str, ...] = ("good",) + DEFECT_CLASSES

MIN_SIZE_PX = 32
MAX_SIZE_PX = 4096
_EXPOSURE = 0.86
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


def check_key(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name}={value!r} is not usable; expected a whole number >= 0")


def label_for_index(seed: int, index: int, defect_rate: float) -> str:
    """Class of item `index` of a line stream: good with probability 1 - defect_rate, else a
    defect class chosen uniformly. Deterministic in (seed, index, defect_rate)."""
    check_key("seed", seed)
    check_key("index", index)
    if isinstance(defect_rate, bool) or not (isinstance(defect_rate, (int, float)) and 0.0 <= defect_rate <= 1.0):
        raise ConfigError(f"defect_rate={defect_rate!r} is not a probability; expected a number from 0 to 1, e.g. 0.02")
    # A keyed hash instead of a Generator per item: 20x cheaper, and stable across numpy versions.
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=16, person=b"synth-label").digest()
    draw = int.from_bytes(digest[:8], "little") / 2.0**64
    if draw >= defect_rate:
        return "good"
    return DEFECT_CLASSES[int.from_bytes(digest[8:], "little") % len(DEFECT_CLASSES)]


def render_item(seed: int, index: int, label: str, width_px: int, height_px: int,
                product: str = products.MIXED) -> RenderedItem:
    """One frame of one tablet of class `label`; identical bytes for identical arguments.

    `product` names an entry of `products.PRODUCTS` (every item that product, as in one lot), or
    is `mixed`: every item a random product."""
    image, _ = render_with_mask(seed, index, label, width_px, height_px, product)
    return RenderedItem(image=image, label=label)


def render_with_mask(seed: int, index: int, label: str, width_px: int, height_px: int,
                     product: str = products.MIXED) -> tuple[np.ndarray, np.ndarray]:
    """The frame and the tablet's coverage (H, W) float32 0..1 (tablet plus anything on it)."""
    check_label(label)
    catalogue_entry = products.lookup(product)
    check_key("seed", seed)
    check_key("index", index)
    check_size_px("width_px", width_px)
    check_size_px("height_px", height_px)
    width_px, height_px = int(width_px), int(height_px)
    seed, index = int(seed), int(index)
    scene_rng = np.random.Generator(np.random.PCG64([seed, index, _SCENE_STREAM]))
    defect_rng = np.random.Generator(np.random.PCG64([seed, index, _label_key(label)]))

    if catalogue_entry is None:
        spec = sample_tablet(scene_rng, width_px, height_px)
    else:
        spec = catalogue_entry.sample_tablet(scene_rng, width_px, height_px)
    sprite = build_sprite(spec, scene_rng, min(width_px, height_px))
    if catalogue_entry is None:
        background = sample_background(scene_rng, spec, width_px, height_px)
    else:
        background = catalogue_entry.sample_background(scene_rng, spec, width_px, height_px)
    sprite.surround_rgb = background.rgb[:, ::8, ::8].mean(axis=(1, 2))
    PAINTERS[label](sprite, defect_rng)

    # Everything drawn on the sprite lies within its reach of the centre, so only the frame's
    # square around the tablet needs warping and compositing.
    reach_px = sprite.reach_px + 2.0
    x0, y0 = max(int(spec.centre_x_px - reach_px), 0), max(int(spec.centre_y_px - reach_px), 0)
    x1 = min(int(math.ceil(spec.centre_x_px + reach_px)) + 1, width_px)
    y1 = min(int(math.ceil(spec.centre_y_px + reach_px)) + 1, height_px)
    placement = _placement(spec, sprite.rows_px, sprite.cols_px)
    placement[:, 2] -= (x0, y0)
    rgba = cv2.warpAffine(shade_sprite(sprite), placement, (x1 - x0, y1 - y0),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Planar (4, h, w) from here on: numpy is much faster broadcasting over a leading axis.
    premul_rgb, local_coverage = np.split(np.ascontiguousarray(rgba.transpose(2, 0, 1)), [3])
    coverage = np.zeros((height_px, width_px), np.float32)
    coverage[y0:y1, x0:x1] = local_coverage[0]
    frame = background.rgb
    _cast_shadow(scene_rng, frame, coverage, spec)
    tablet_area = frame[:, y0:y1, x0:x1]
    tablet_area *= 1.0 - local_coverage
    tablet_area += premul_rgb
    _add_highlight(scene_rng, frame, coverage, spec)
    if background.pocket is not None:
        # The clear blister film over the pocket lifts everything under it a little.
        frame += scene_rng.uniform(4.0, 14.0) * background.pocket
    return _camera(scene_rng, frame), coverage


def _placement(spec: TabletSpec, rows_px: int, cols_px: int) -> np.ndarray:
    """Affine map from sprite pixels to frame pixels: rotate about the sprite centre, then move."""
    theta = math.radians(spec.angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    half_x, half_y = (cols_px - 1) / 2.0, (rows_px - 1) / 2.0
    return np.float32([
        [c, -s, spec.centre_x_px - (c * half_x - s * half_y)],
        [s, c, spec.centre_y_px - (s * half_x + c * half_y)],
    ])


def _cast_shadow(rng: np.random.Generator, frame: np.ndarray, coverage: np.ndarray, spec: TabletSpec) -> None:
    """Soft drop shadow away from the lamp, darkening what lies under and beside the tablet.

    A wide blur is the costliest step of a frame, so it runs at a quarter of the resolution and
    one warpAffine brings the result back to full size and moves it away from the lamp.
    """
    height_px, width_px = coverage.shape
    lx, ly, _ = LIGHT_WORLD_XYZ
    norm = math.hypot(lx, ly)
    offset_px = rng.uniform(0.025, 0.05) * spec.length_px
    sigma_px = max(1.0, rng.uniform(0.03, 0.06) * spec.length_px)
    strength = rng.uniform(0.35, 0.6)
    small = cv2.resize(coverage, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, sigma_px / 4.0))
    kx, ky = small.shape[1] / width_px, small.shape[0] / height_px
    dx, dy = -lx / norm * offset_px, -ly / norm * offset_px
    # Destination pixel (x, y) reads the small image at the pixel-centre-aligned point of (x - dx, y - dy).
    to_small = np.float32([[kx, 0, (0.5 - dx) * kx - 0.5], [0, ky, (0.5 - dy) * ky - 0.5]])
    shadow = cv2.warpAffine(small, to_small, (width_px, height_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    frame *= 1.0 - strength * shadow


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
    centre_x, centre_y = np.asarray((spec.centre_x_px, spec.centre_y_px)) + towards * 0.45 * spec.half_width_px
    half = int(spec.half_length_px) + 3
    cx, cy = int(spec.centre_x_px), int(spec.centre_y_px)
    rows = slice(max(cy - half, 0), min(cy + half + 1, frame.shape[1]))
    cols = slice(max(cx - half, 0), min(cx + half + 1, frame.shape[2]))
    # The blob is smooth: evaluate it on a 4x coarser grid and let resize interpolate.
    height_px, width_px = rows.stop - rows.start, cols.stop - cols.start
    small_h, small_w = max(2, height_px // 4), max(2, width_px // 4)
    ys = (rows.start - centre_y + np.arange(small_h, dtype=np.float32) * ((height_px - 1) / (small_h - 1)))[:, None]
    xs = (cols.start - centre_x + np.arange(small_w, dtype=np.float32) * ((width_px - 1) / (small_w - 1)))[None, :]
    cos_t, sin_t = np.float32(axis[0]), np.float32(axis[1])
    along = (xs * cos_t + ys * sin_t) * np.float32(1.0 / sigma_along)
    across = (ys * cos_t - xs * sin_t) * np.float32(1.0 / sigma_across)
    blob = np.exp(-0.5 * (along * along + across * across)) * np.float32(strength)
    blob = cv2.resize(blob, (width_px, height_px), interpolation=cv2.INTER_LINEAR)
    frame[:, rows, cols] += blob * coverage[rows, cols]


def _camera(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
    """Lighting drift, white balance, optics blur and sensor noise on a planar frame, then
    8-bit quantisation to an interleaved RGB image."""
    _, height_px, width_px = frame.shape
    xs, ys = textures.unit_axes(height_px, width_px)
    gx, gy = (float(g) for g in rng.uniform(-0.12, 0.12, size=2))  # numpy float64 scalars would upcast
    # Exposure is set so a white tablet sits near 210 and only specular peaks clip at 255.
    gain = (_EXPOSURE * rng.uniform(0.85, 1.15)) * (1.0 + gx * xs + gy * ys)
    white_balance = rng.uniform(0.96, 1.04, size=3).astype(np.float32)
    frame *= gain
    frame *= white_balance[:, None, None]
    image = cv2.merge([frame[0], frame[1], frame[2]])  # interleaved (H, W, 3) from here on
    blur_sigma_px = rng.uniform(0.0, 1.0) * max(1.0, min(height_px, width_px) / 224.0) ** 0.5
    noise_sigma = rng.uniform(1.0, 4.0)
    noise = textures.sensor_noise(rng, height_px, width_px)
    if blur_sigma_px > 0.3:
        # Optics blur the light, not the sensor noise; blurring the 8-bit image is 3x cheaper
        # and its rounding (half a grey level) is far below the noise added next. (The abs in
        # convertScaleAbs never bites: every light value here is a product of positive terms.)
        image = cv2.GaussianBlur(cv2.convertScaleAbs(image), (0, 0), blur_sigma_px)
    # One pass: add the noise, round, saturate to 0..255 and cast to uint8.
    image = cv2.addWeighted(image, 1.0, noise, noise_sigma, 0.0, dtype=cv2.CV_8U)
    return np.ascontiguousarray(image)
