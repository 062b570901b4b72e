"""What lies under the tablet: a textured conveyor belt, or a blister pocket in aluminium foil."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inspection.synthetic import textures
from inspection.synthetic.tablet import LIGHT_WORLD_XYZ, Shape, TabletSpec, planar

_BELT_COLOURS_RGB = (
    (58, 60, 62),  # dark grey
    (36, 36, 38),  # near black
    (42, 74, 56),  # dark green
    (40, 58, 90),  # dark blue
)


@dataclass(frozen=True, slots=True)
class Background:
    rgb: np.ndarray  # (3, H, W) float32 planar, 0..255
    pocket: np.ndarray | None  # (H, W) 0..1 blister pocket area, None on a belt


def sample_background(rng: np.random.Generator, spec: TabletSpec, width_px: int, height_px: int) -> Background:
    if rng.random() < 0.6:
        return belt(rng, width_px, height_px)
    return blister(rng, spec, width_px, height_px)


def belt(rng: np.random.Generator, width_px: int, height_px: int, colour_rgb: tuple[int, int, int] | None = None,
         brightness: tuple[float, float] = (0.85, 1.2)) -> Background:
    """A textured conveyor belt: of a random belt colour unless one is given."""
    if colour_rgb is None:
        colour_rgb = _BELT_COLOURS_RGB[int(rng.integers(len(_BELT_COLOURS_RGB)))]
    colour = planar(colour_rgb) * rng.uniform(*brightness)
    contrast = rng.uniform(0.07, 0.16)
    grain = textures.random_crop("belt", rng, height_px, width_px)
    return Background(rgb=(1.0 + contrast * grain) * colour, pocket=None)


_HALF_CIRCLE = np.stack([np.cos(np.linspace(-math.pi / 2, math.pi / 2, 24)),
                         np.sin(np.linspace(-math.pi / 2, math.pi / 2, 24))], 1)
_CIRCLE = np.stack([np.cos(np.linspace(0.0, 2 * math.pi, 64, endpoint=False)),
                    np.sin(np.linspace(0.0, 2 * math.pi, 64, endpoint=False))], 1)


def _outline_points(shape: Shape, half_length_px: float, half_width_px: float) -> np.ndarray:
    """Closed outline (N, 2) of an ellipse or stadium centred at 0, long axis along x."""
    if shape is Shape.CAPSULE:
        right = _HALF_CIRCLE * half_width_px + (half_length_px - half_width_px, 0.0)
        return np.concatenate([right, -right])
    return _CIRCLE * (half_length_px, half_width_px)


def blister(rng: np.random.Generator, spec: TabletSpec, width_px: int, height_px: int,
            foil_grey: tuple[float, float] = (145.0, 195.0), crop: bool = False) -> Background:
    """A blister pocket fitted to the tablet, in aluminium foil of a grey level within foil_grey.

    crop: work out the pocket only in the box around it, where it differs from flat foil (faster;
    not bit for bit what the whole-frame computation gives, so `mixed` does not use it)."""
    foil_grey = rng.uniform(*foil_grey)
    tint = planar((1.0, 1.0, rng.uniform(1.0, 1.05)))
    contrast = rng.uniform(0.04, 0.09)
    grain = textures.random_crop("foil", rng, height_px, width_px)

    # The thermoformed pocket is a little larger than the tablet, which sits loosely in it.
    grow = rng.uniform(1.10, 1.22)
    half_length = spec.half_length_px * grow + 2.0
    half_width = spec.half_width_px * grow + 2.0 if spec.shape is not Shape.ROUND else half_length
    gap_px = min(half_length - spec.half_length_px, half_width - spec.half_width_px)
    shift = rng.uniform(0.0, 0.35 * gap_px)
    direction = rng.uniform(0.0, 2 * math.pi)
    angle = math.radians(spec.angle_deg + rng.uniform(-4.0, 4.0))
    rotation = np.asarray([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = _outline_points(spec.shape, half_length, half_width) @ rotation.T
    points += (spec.centre_x_px + shift * math.cos(direction), spec.centre_y_px + shift * math.sin(direction))
    wall_px = max(1.2, 0.025 * spec.length_px)
    box = (slice(0, height_px), slice(0, width_px))
    if crop:
        # The wall blur reaches 4 sigma beyond the outline, the Sobel one pixel more.
        reach_px = 4.0 * wall_px + 3.0
        (left, top), (right, bottom) = points.min(axis=0) - reach_px, points.max(axis=0) + reach_px
        box = (slice(max(int(top), 0), min(int(math.ceil(bottom)) + 1, height_px)),
               slice(max(int(left), 0), min(int(math.ceil(right)) + 1, width_px)))
        points -= (box[1].start, box[0].start)
    mask = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)

    pocket = cv2.GaussianBlur(mask.astype(np.float32) * (1.0 / 255.0), (0, 0), wall_px)
    # The pocket wall catches the lamp on one side and shades the other, plus a bright lip.
    gx = cv2.Sobel(pocket, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(pocket, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lx, ly, _ = LIGHT_WORLD_XYZ
    facing = (gx * lx + gy * ly) * (wall_px * 2.5)  # about -1..1 across the wall
    lip = 4.0 * pocket * (1.0 - pocket)
    level = foil_grey * (1.0 + 0.10 * pocket) + rng.uniform(20.0, 45.0) * lip - 45.0 * facing
    surface = 1.0 + contrast * grain[box] * (1.0 - 0.6 * pocket)
    if not crop:
        return Background(rgb=(level * surface) * tint, pocket=pocket)
    # Around the box: flat foil.
    rgb = (foil_grey * (1.0 + contrast * grain)) * tint
    rgb[(slice(None), *box)] = (level * surface) * tint
    whole_pocket = np.zeros((height_px, width_px), np.float32)
    whole_pocket[box] = pocket
    return Background(rgb=rgb, pocket=whole_pocket)
