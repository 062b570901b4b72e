"""One tablet or capsule: its random description, its outline, and its axis-aligned sprite.

The sprite is drawn in the tablet's own frame (long axis along x, centre in the middle) and is
rotated into the scene later by one warpAffine, so shading, embossing and defects drawn here turn
with the tablet. The light is fixed in the world; it is turned into the sprite frame before
shading so every tablet is lit from the same side of the image whatever its rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from inspection.synthetic import textures

# Direction towards the lamp in image coordinates (x right, y down, z towards the camera):
# upper left, as on a ring-light station with one stronger segment.
LIGHT_WORLD_XYZ = (-0.45, -0.55, 0.70)
# How far a fibre may reach beyond the rim, as a share of the tablet length; sizes the sprite.
FIBRE_OVERSHOOT = 0.13

_TABLET_COLOURS_RGB = (
    (243, 243, 239),  # white
    (234, 230, 216),  # off-white
    (238, 225, 190),  # cream
    (240, 226, 152),  # pale yellow
    (236, 184, 194),  # pink
    (174, 203, 234),  # light blue
    (240, 154, 74),  # orange
)
# Gelatin capsule shells come in stronger colours too.
_CAPSULE_COLOURS_RGB = _TABLET_COLOURS_RGB + (
    (200, 64, 60),  # red
    (70, 100, 178),  # blue
    (88, 164, 108),  # green
    (242, 200, 64),  # yellow
)
_CORE_RGB = np.float32([232, 228, 218])[:, None, None]  # inside of a film-coated tablet or a capsule's fill
_EMBOSS_TEXTS = ("A", "B2", "10", "M", "5", "XR", "50", "P", "40", "K7", "RX", "C3")
_EMBOSS_GLYPHS = ("1", "2", "5", "7", "A", "M", "P", "T")


class Shape(StrEnum):
    ROUND = "round"
    OVAL = "oval"
    CAPSULE = "capsule"


def planar(colour_rgb) -> np.ndarray:
    """A colour shaped (3, 1, 1) to broadcast over planar (3, H, W) images; planes pass through."""
    colour = np.asarray(colour_rgb, np.float32)
    return colour[:, None, None] if colour.ndim == 1 else colour


@dataclass(frozen=True, slots=True)
class TabletSpec:
    shape: Shape
    length_px: float  # long axis (equals width for round tablets)
    width_px: float
    colour_rgb: tuple[float, float, float]
    cap_colour_rgb: tuple[float, float, float]  # capsule cap half (x < seam); colour_rgb otherwise
    seam_x_px: float  # capsule cap/body seam along the long axis
    marking: str  # "none", "score", "text" or "score_text"
    text: str
    gloss: float  # specular highlight strength, 0..1
    angle_deg: float
    centre_x_px: float
    centre_y_px: float

    @property
    def half_length_px(self) -> float:
        return self.length_px / 2.0

    @property
    def half_width_px(self) -> float:
        return self.width_px / 2.0


def _pick(rng: np.random.Generator, options: tuple, weights: tuple[float, ...]):
    """One option with the given probabilities (rng.choice with p= is slow for a single draw)."""
    draw = rng.random()
    for option, weight in zip(options, weights):
        draw -= weight
        if draw < 0.0:
            return option
    return options[-1]


def _jitter_colour(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    gain = rng.uniform(0.95, 1.03)
    return tuple(float(np.clip(c * gain + rng.uniform(-5, 5), 0, 255)) for c in rgb)


def sample_tablet(rng: np.random.Generator, width_px: int, height_px: int) -> TabletSpec:
    """Random tablet, 45-70% of the short frame side long, wholly inside the frame."""
    frame_min_px = min(width_px, height_px)
    shape = _pick(rng, (Shape.ROUND, Shape.OVAL, Shape.CAPSULE), (0.45, 0.30, 0.25))
    length_px = rng.uniform(0.45, 0.70) * frame_min_px
    aspect = {Shape.ROUND: 1.0, Shape.OVAL: rng.uniform(1.25, 1.6), Shape.CAPSULE: rng.uniform(2.1, 2.7)}[shape]
    if shape is Shape.CAPSULE:
        body = int(rng.integers(len(_CAPSULE_COLOURS_RGB)))
        cap = (body + 1 + int(rng.integers(len(_CAPSULE_COLOURS_RGB) - 1))) % len(_CAPSULE_COLOURS_RGB)
        colour = _jitter_colour(rng, _CAPSULE_COLOURS_RGB[body])
        cap_colour = _jitter_colour(rng, _CAPSULE_COLOURS_RGB[cap])
        marking, text, gloss = "none", "", rng.uniform(0.30, 0.55)
    else:
        colour = _jitter_colour(rng, _TABLET_COLOURS_RGB[int(rng.integers(len(_TABLET_COLOURS_RGB)))])
        cap_colour = colour
        marking = _pick(rng, ("none", "score", "text", "score_text"), (0.15, 0.30, 0.35, 0.20))
        left, right = (_EMBOSS_GLYPHS[int(i)] for i in rng.integers(len(_EMBOSS_GLYPHS), size=2))
        text = f"{left} {right}" if marking == "score_text" else _EMBOSS_TEXTS[int(rng.integers(len(_EMBOSS_TEXTS)))]
        gloss = rng.uniform(0.08, 0.30)
    reach_px = length_px / 2.0 + 2.0  # the tablet's radius under any rotation
    slack_x_px = max(0.0, min(width_px / 2.0 - reach_px - 1.0, 0.2 * width_px))
    slack_y_px = max(0.0, min(height_px / 2.0 - reach_px - 1.0, 0.2 * height_px))
    return TabletSpec(
        shape=shape,
        length_px=float(length_px),
        width_px=float(length_px / aspect),
        colour_rgb=colour,
        cap_colour_rgb=cap_colour,
        seam_x_px=float(rng.uniform(-0.12, 0.0) * length_px),
        marking=marking,
        text=text,
        gloss=float(gloss),
        angle_deg=float(rng.uniform(0.0, 360.0)),
        centre_x_px=float(width_px / 2.0 + rng.uniform(-slack_x_px, slack_x_px)),
        centre_y_px=float(height_px / 2.0 + rng.uniform(-slack_y_px, slack_y_px)),
    )


def inside_distance_px(spec: TabletSpec, x_px, y_px):
    """Distance from the tablet's rim, positive inside (exact for round/capsule, close for oval)."""
    a, b = spec.half_length_px, spec.half_width_px
    # sqrt(x*x + y*y) rather than np.hypot, which is several times slower on arrays.
    if spec.shape is Shape.ROUND:
        return a - np.sqrt(x_px * x_px + y_px * y_px)
    if spec.shape is Shape.CAPSULE:
        beyond = np.maximum(np.abs(x_px) - (a - b), 0.0)
        return b - np.sqrt(beyond * beyond + y_px * y_px)
    # Ellipse: first-order distance (1 - k) / |grad k|, written so the centre gives b, not 0/0.
    xa, yb = x_px * (1.0 / a), y_px * (1.0 / b)
    k = np.sqrt(xa * xa + yb * yb)
    xa, yb = xa * (1.0 / a), yb * (1.0 / b)
    g = np.sqrt(xa * xa + yb * yb)
    return (1.0 - k) * (k + 1e-6) / (g + 1e-6 / b)


def rim_radius_px(spec: TabletSpec, angle_rad: float) -> float:
    """Distance from the centre to the rim along a direction of the sprite frame."""
    c, s = abs(math.cos(angle_rad)), abs(math.sin(angle_rad))
    a, b = spec.half_length_px, spec.half_width_px
    if spec.shape is Shape.ROUND:
        return a
    if spec.shape is Shape.OVAL:
        return 1.0 / math.hypot(c / a, s / b)
    h = a - b
    if s > 1e-9 and b / s * c <= h:
        return b / s  # hits a straight side
    return h * c + math.sqrt(max(h * h * c * c - h * h + b * b, 0.0))


@dataclass(slots=True)
class Sprite:
    """Mutable layers of one tablet in its own frame; the defect painters edit these."""

    spec: TabletSpec
    rows_px: int
    cols_px: int
    reach_px: float  # radius around the centre that holds everything drawn, overlay included
    frame_min_px: int
    x_px: np.ndarray  # (rows, cols) coordinates from the tablet centre, read-only
    y_px: np.ndarray
    inside_px: np.ndarray  # distance from the intact rim, positive inside
    cut_px: np.ndarray  # same after chips and breaks; the alpha comes from this one
    relief_px: np.ndarray  # surface height for shading
    grain: np.ndarray  # unit-std surface texture
    # Colours are planar, (3, S, S): numpy broadcasts a mask or a colour over a leading axis
    # several times faster than over a trailing axis of length 3.
    albedo_rgb: np.ndarray  # (3, rows, cols) 0..255
    light_xyz: tuple[float, float, float]  # light direction in the sprite frame
    fracture: np.ndarray | None = None  # 0..1, exposed broken surface (darker, rough)
    # Things lying on or beside the tablet (particles, fragments), premultiplied, drawn over it.
    overlay_premul_rgb: np.ndarray | None = None
    overlay_alpha: np.ndarray | None = None

    def index_of(self, x_px: float, y_px: float) -> tuple[int, int]:
        """(column, row) of a point given in centred coordinates."""
        return int(round(x_px + (self.cols_px - 1) / 2.0)), int(round(y_px + (self.rows_px - 1) / 2.0))

    def window(self, x_px: float, y_px: float, radius_px: float) -> tuple[slice, slice]:
        """Row and column slices of the square around a point, clipped to the sprite."""
        col, row = self.index_of(x_px, y_px)
        r = int(math.ceil(radius_px)) + 2
        return (slice(max(row - r, 0), min(row + r + 1, self.rows_px)),
                slice(max(col - r, 0), min(col + r + 1, self.cols_px)))

    def paint_overlay(self, coverage: np.ndarray, colour_rgb) -> None:
        """Lay something of the given colour(s) with this 0..1 coverage over everything so far."""
        if self.overlay_alpha is None:
            self.overlay_premul_rgb = np.zeros((3, self.rows_px, self.cols_px), np.float32)
            self.overlay_alpha = np.zeros((self.rows_px, self.cols_px), np.float32)
        keep = 1.0 - coverage
        self.overlay_premul_rgb *= keep
        self.overlay_premul_rgb += coverage * planar(colour_rgb)
        self.overlay_alpha *= keep
        self.overlay_alpha += coverage


def _marking_mask(spec: TabletSpec, rng: np.random.Generator, rows_px: int, cols_px: int) -> np.ndarray | None:
    """Debossed score line and/or letters, 0..1, centred in the sprite."""
    if spec.marking == "none":
        return None
    hw = spec.half_width_px
    mask = np.zeros((rows_px, cols_px), np.uint8)
    centre_x, centre_y = (cols_px - 1) / 2.0, (rows_px - 1) / 2.0
    if "score" in spec.marking:
        reach = 0.82 * hw
        cv2.line(mask, (round(centre_x), round(centre_y - reach)), (round(centre_x), round(centre_y + reach)), 255,
                 max(1, round(0.07 * hw)), cv2.LINE_AA)
    if "text" in spec.marking:
        font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)[int(rng.integers(2))]
        thickness = max(1, round(0.05 * hw))
        if spec.marking == "score_text":
            parts = [(spec.text[0], -0.45 * hw), (spec.text[-1], 0.45 * hw)]
            box_w, box_h = 0.35 * hw, 0.5 * hw
        else:
            parts = [(spec.text, 0.0)]
            box_w, box_h = min(0.9 * hw, 0.6 * spec.half_length_px), 0.5 * hw
        for text, offset_px in parts:
            (w1, h1), _ = cv2.getTextSize(text, font, 1.0, thickness)
            scale = min(box_w / w1, box_h / h1)
            origin = (round(centre_x + offset_px - w1 * scale / 2), round(centre_y + h1 * scale / 2))
            cv2.putText(mask, text, origin, font, scale, 255, thickness, cv2.LINE_AA)
    return cv2.GaussianBlur(mask.astype(np.float32) * (1.0 / 255.0), (0, 0), 0.7)


def build_sprite(spec: TabletSpec, rng: np.random.Generator, frame_min_px: int) -> Sprite:
    """Outline, relief and surface colour of an intact tablet (no defect yet)."""
    # The tablet's box plus a margin all round for fibre ends beyond the rim (a rectangle, not a
    # square: a capsule's sprite is then half the size).
    margin_px = FIBRE_OVERSHOOT * spec.length_px + 4.0
    rows_px = int(math.ceil(spec.width_px + 2 * margin_px))
    cols_px = int(math.ceil(spec.length_px + 2 * margin_px))
    x_px, y_px = textures.centred_grid(rows_px, cols_px)
    inside = inside_distance_px(spec, x_px, y_px).astype(np.float32)
    hw = spec.half_width_px
    depth = np.clip(inside * (1.0 / hw), 0.0, 1.0)
    if spec.shape is Shape.CAPSULE:
        # Cylinder cross-section, plus the small step where the cap overlaps the body.
        height = (0.6 * hw) * np.sqrt(depth * (2.0 - depth))
        cap = np.clip(spec.seam_x_px - x_px + 0.5, 0.0, 1.0)
        height += (0.05 * hw) * cap
    else:
        bevel = np.clip(inside * (1.0 / (0.12 * hw)), 0.0, 1.0)
        height = (0.10 * hw) * bevel + (0.12 * hw) * depth * (2.0 - depth)
    marking = _marking_mask(spec, rng, rows_px, cols_px)
    if marking is not None:
        height -= rng.uniform(0.7, 1.3) * max(1.0, hw / 60.0) * marking

    grain = textures.random_crop("grain", rng, rows_px, cols_px)
    grain_gain = rng.uniform(0.015, 0.04) if spec.shape is not Shape.CAPSULE else 0.008
    speckle = 1.0 + grain_gain * grain
    colour = planar(spec.colour_rgb)
    albedo = speckle * colour
    if spec.shape is Shape.CAPSULE:
        albedo += (cap * speckle) * (planar(spec.cap_colour_rgb) - colour)

    theta = math.radians(spec.angle_deg)
    lx, ly, lz = LIGHT_WORLD_XYZ
    light = (math.cos(theta) * lx + math.sin(theta) * ly, -math.sin(theta) * lx + math.cos(theta) * ly, lz)
    return Sprite(spec=spec, rows_px=rows_px, cols_px=cols_px, reach_px=spec.half_length_px + margin_px,
                  frame_min_px=frame_min_px, x_px=x_px, y_px=y_px,
                  inside_px=inside, cut_px=inside.copy(), relief_px=height.astype(np.float32, copy=False),
                  grain=grain, albedo_rgb=albedo.astype(np.float32, copy=False), light_xyz=light)


def shade_sprite(sprite: Sprite) -> np.ndarray:
    """Premultiplied RGBA (rows, cols, 4) float32, interleaved for warpAffine: Lambert shading of the
    relief, rim darkening, broken faces, and the overlay on top."""
    gx = cv2.Sobel(sprite.relief_px, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(sprite.relief_px, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lx, ly, lz = sprite.light_xyz
    norm = 1.0 / (lz * np.sqrt(gx * gx + gy * gy + 1.0))
    # Flat top = 1.0; faces towards the lamp brighter, faces away darker, never black.
    lambert = np.maximum(lz - gx * lx - gy * ly, 0.0) * norm
    hw = sprite.spec.half_width_px
    rim = 0.80 + 0.20 * np.clip(sprite.inside_px * (1.0 / (0.3 * hw)), 0.0, 1.0)
    shade = (0.30 + 0.70 * lambert) * rim
    albedo = sprite.albedo_rgb
    if sprite.fracture is not None:
        # A broken face shows the uncoated whitish core, rough and unpolished, so grainy and dim.
        albedo = albedo + (0.6 * sprite.fracture) * (_CORE_RGB - albedo)
        shade *= 1.0 - sprite.fracture * (0.30 + 0.15 * sprite.grain)
    alpha = np.clip(sprite.cut_px + 0.5, 0.0, 1.0)
    premul = albedo * (shade * alpha)
    if sprite.overlay_alpha is not None:
        keep = 1.0 - sprite.overlay_alpha
        premul = premul * keep + sprite.overlay_premul_rgb
        alpha = alpha * keep + sprite.overlay_alpha
    return cv2.merge([premul[0], premul[1], premul[2], alpha])
