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
    font: int = -1  # OpenCV Hershey font of the embossing: 0 simplex, 1 duplex; -1 drawn per item

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


def jitter_colour(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    gain = rng.uniform(0.95, 1.03)
    return tuple(min(max(c * gain + float(rng.uniform(-5, 5)), 0.0), 255.0) for c in rgb)


def sample_tablet(rng: np.random.Generator, width_px: int, height_px: int) -> TabletSpec:
    """Random tablet, 45-70% of the short frame side long, wholly inside the frame."""
    frame_min_px = min(width_px, height_px)
    shape = _pick(rng, (Shape.ROUND, Shape.OVAL, Shape.CAPSULE), (0.45, 0.30, 0.25))
    length_px = rng.uniform(0.45, 0.70) * frame_min_px
    aspect = {Shape.ROUND: 1.0, Shape.OVAL: rng.uniform(1.25, 1.6), Shape.CAPSULE: rng.uniform(2.1, 2.7)}[shape]
    if shape is Shape.CAPSULE:
        body = int(rng.integers(len(_CAPSULE_COLOURS_RGB)))
        cap = (body + 1 + int(rng.integers(len(_CAPSULE_COLOURS_RGB) - 1))) % len(_CAPSULE_COLOURS_RGB)
        colour = jitter_colour(rng, _CAPSULE_COLOURS_RGB[body])
        cap_colour = jitter_colour(rng, _CAPSULE_COLOURS_RGB[cap])
        marking, text, gloss = "none", "", rng.uniform(0.30, 0.55)
    else:
        colour = jitter_colour(rng, _TABLET_COLOURS_RGB[int(rng.integers(len(_TABLET_COLOURS_RGB)))])
        cap_colour = colour
        marking = _pick(rng, ("none", "score", "text", "score_text"), (0.15, 0.30, 0.35, 0.20))
        left, right = (_EMBOSS_GLYPHS[int(i)] for i in rng.integers(len(_EMBOSS_GLYPHS), size=2))
        text = f"{left} {right}" if marking == "score_text" else _EMBOSS_TEXTS[int(rng.integers(len(_EMBOSS_TEXTS)))]
        gloss = rng.uniform(0.08, 0.30)
    return place_tablet(rng, width_px, height_px, shape=shape, length_px=length_px, aspect=aspect, colour=colour,
                        cap_colour=cap_colour, marking=marking, text=text, gloss=gloss)


def place_tablet(rng: np.random.Generator, width_px: int, height_px: int, *, shape: Shape, length_px: float,
                 aspect: float, colour: tuple[float, float, float], cap_colour: tuple[float, float, float],
                 marking: str, text: str, gloss: float, seam_range: tuple[float, float] = (-0.12, 0.0),
                 font: int = -1) -> TabletSpec:
    """The spec of a tablet of the given look at a random capsule seam, rotation and position,
    wholly inside the frame."""
    reach_px = length_px / 2.0 + 2.0  # the tablet's radius under any rotation
    slack_x_px = max(0.0, min(width_px / 2.0 - reach_px - 1.0, 0.2 * width_px))
    slack_y_px = max(0.0, min(height_px / 2.0 - reach_px - 1.0, 0.2 * height_px))
    return TabletSpec(
        shape=shape,
        length_px=float(length_px),
        width_px=float(length_px / aspect),
        colour_rgb=colour,
        cap_colour_rgb=cap_colour,
        seam_x_px=float(rng.uniform(*seam_range) * length_px),
        marking=marking,
        text=text,
        gloss=float(gloss),
        angle_deg=float(rng.uniform(0.0, 360.0)),
        centre_x_px=float(width_px / 2.0 + rng.uniform(-slack_x_px, slack_x_px)),
        centre_y_px=float(height_px / 2.0 + rng.uniform(-slack_y_px, slack_y_px)),
        font=font,
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


def inside_distance_at(spec: TabletSpec, x_px: float, y_px: float) -> float:
    """inside_distance_px for one point, in plain floats (numpy scalars cost 20x more)."""
    a, b = spec.half_length_px, spec.half_width_px
    if spec.shape is Shape.ROUND:
        return a - math.hypot(x_px, y_px)
    if spec.shape is Shape.CAPSULE:
        return b - math.hypot(max(abs(x_px) - (a - b), 0.0), y_px)
    k = math.hypot(x_px / a, y_px / b)
    g = math.hypot(x_px / (a * a), y_px / (b * b))
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


Window = tuple[slice, slice]  # rows, columns of a sprite


@dataclass(slots=True)
class Sprite:
    """Mutable layers of one tablet in its own frame; the defect painters edit these.

    The layers cover the tablet's box plus a margin for things beside it (fibre ends, fragments);
    the tablet layers are only computed inside `body`, the box itself, and stay empty around it.
    """

    spec: TabletSpec
    rows_px: int
    cols_px: int
    body: Window  # the tablet's box, 2 px of slack all round
    reach_px: float  # radius around the centre that holds everything drawn, overlay included
    frame_min_px: int
    x_px: np.ndarray  # (rows, cols) coordinates from the tablet centre, read-only
    y_px: np.ndarray
    inside_px: np.ndarray  # distance from the intact rim, positive inside
    cut_px: np.ndarray  # same after chips and breaks; the alpha comes from this one
    relief_px: np.ndarray  # surface height for shading
    grain: np.ndarray  # unit-std surface texture
    # Colours are planar, (3, rows, cols): numpy broadcasts a mask or a colour over a leading
    # axis several times faster than over a trailing axis of length 3.
    albedo_rgb: np.ndarray  # 0..255
    light_xyz: tuple[float, float, float]  # light direction in the sprite frame
    fracture: np.ndarray | None = None  # 0..1, exposed broken surface (darker, rough)
    # Things lying on or beside the tablet (particles, fragments), premultiplied, drawn over it.
    overlay_premul_rgb: np.ndarray | None = None
    overlay_alpha: np.ndarray | None = None
    # Mean colour of what the tablet lies on (belt or foil), for things that reach beyond the rim.
    surround_rgb: np.ndarray | None = None

    def index_of(self, x_px: float, y_px: float) -> tuple[int, int]:
        """(column, row) of a point given in centred coordinates."""
        return int(round(x_px + (self.cols_px - 1) / 2.0)), int(round(y_px + (self.rows_px - 1) / 2.0))

    def window(self, x_px: float, y_px: float, radius_px: float) -> Window:
        """Row and column slices of the square around a point, clipped to the sprite."""
        return self.box(x_px - radius_px, y_px - radius_px, x_px + radius_px, y_px + radius_px)

    def box(self, left_px: float, top_px: float, right_px: float, bottom_px: float) -> Window:
        """Row and column slices covering a box given in centred coordinates (+2 px), clipped."""
        half_x, half_y = (self.cols_px - 1) / 2.0, (self.rows_px - 1) / 2.0
        return (slice(max(int(math.floor(top_px + half_y)) - 2, 0),
                      min(int(math.ceil(bottom_px + half_y)) + 3, self.rows_px)),
                slice(max(int(math.floor(left_px + half_x)) - 2, 0),
                      min(int(math.ceil(right_px + half_x)) + 3, self.cols_px)))

    def paint_overlay(self, coverage: np.ndarray, colour_rgb, window: Window) -> None:
        """Lay something of the given colour(s) with this 0..1 coverage (shaped like window)
        over everything so far."""
        if self.overlay_alpha is None:
            self.overlay_premul_rgb = np.zeros((3, self.rows_px, self.cols_px), np.float32)
            self.overlay_alpha = np.zeros((self.rows_px, self.cols_px), np.float32)
        premul, alpha = self.overlay_premul_rgb[(slice(None), *window)], self.overlay_alpha[window]
        keep = 1.0 - coverage
        premul *= keep
        premul += coverage * planar(colour_rgb)
        alpha *= keep
        alpha += coverage


def _marking_mask(spec: TabletSpec, rng: np.random.Generator, shape: tuple[int, int],
                  centre_xy: tuple[float, float]) -> np.ndarray | None:
    """Debossed score line and/or letters, 0..1, in an image of `shape` with the tablet centre
    at centre_xy."""
    if spec.marking == "none":
        return None
    hw = spec.half_width_px
    mask = np.zeros(shape, np.uint8)
    centre_x, centre_y = centre_xy
    if "score" in spec.marking:
        reach = 0.82 * hw
        cv2.line(mask, (round(centre_x), round(centre_y - reach)), (round(centre_x), round(centre_y + reach)), 255,
                 max(1, round(0.07 * hw)), cv2.LINE_AA)
    if "text" in spec.marking:
        font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)[spec.font if spec.font >= 0 else int(rng.integers(2))]
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
    a, b = spec.half_length_px, spec.half_width_px
    half_x, half_y = (cols_px - 1) / 2.0, (rows_px - 1) / 2.0
    body = (slice(int(half_y - b) - 2, int(math.ceil(half_y + b)) + 3),
            slice(int(half_x - a) - 2, int(math.ceil(half_x + a)) + 3))
    body_x, body_y = x_px[body], y_px[body]

    inside = np.full((rows_px, cols_px), -margin_px, np.float32)
    inside[body] = inside_distance_px(spec, body_x, body_y)
    depth = np.clip(inside[body] * (1.0 / b), 0.0, 1.0)
    relief = np.zeros((rows_px, cols_px), np.float32)
    if spec.shape is Shape.CAPSULE:
        # Cylinder cross-section, plus the small step where the cap overlaps the body.
        cap = np.clip(spec.seam_x_px - body_x + 0.5, 0.0, 1.0)
        relief[body] = (0.6 * b) * np.sqrt(depth * (2.0 - depth)) + (0.05 * b) * cap
    else:
        bevel = np.clip(inside[body] * (1.0 / (0.12 * b)), 0.0, 1.0)
        relief[body] = (0.10 * b) * bevel + (0.12 * b) * depth * (2.0 - depth)
    marking = _marking_mask(spec, rng, body_x.shape, (half_x - body[1].start, half_y - body[0].start))
    if marking is not None:
        relief[body] -= rng.uniform(0.7, 1.3) * max(1.0, b / 60.0) * marking

    grain = textures.random_crop("grain", rng, rows_px, cols_px)
    grain_gain = rng.uniform(0.015, 0.04) if spec.shape is not Shape.CAPSULE else 0.008
    speckle = 1.0 + grain_gain * grain[body]
    colour = planar(spec.colour_rgb)
    albedo = np.zeros((3, rows_px, cols_px), np.float32)
    albedo[:, body[0], body[1]] = speckle * colour
    if spec.shape is Shape.CAPSULE:
        albedo[:, body[0], body[1]] += (cap * speckle) * (planar(spec.cap_colour_rgb) - colour)

    theta = math.radians(spec.angle_deg)
    lx, ly, lz = LIGHT_WORLD_XYZ
    light = (math.cos(theta) * lx + math.sin(theta) * ly, -math.sin(theta) * lx + math.cos(theta) * ly, lz)
    return Sprite(spec=spec, rows_px=rows_px, cols_px=cols_px, body=body, reach_px=a + margin_px,
                  frame_min_px=frame_min_px, x_px=x_px, y_px=y_px, inside_px=inside, cut_px=inside.copy(),
                  relief_px=relief, grain=grain, albedo_rgb=albedo, light_xyz=light)


def shade_sprite(sprite: Sprite) -> np.ndarray:
    """Premultiplied RGBA (rows, cols, 4) float32, interleaved for warpAffine: Lambert shading of
    the relief, rim darkening, broken faces, and the overlay on top."""
    body = sprite.body
    relief = sprite.relief_px[body]
    gx = cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lx, ly, lz = sprite.light_xyz
    norm = 1.0 / (lz * np.sqrt(gx * gx + gy * gy + 1.0))
    # Flat top = 1.0; faces towards the lamp brighter, faces away darker, never black.
    lambert = np.maximum(lz - gx * lx - gy * ly, 0.0) * norm
    rim = 0.80 + 0.20 * np.clip(sprite.inside_px[body] * (1.0 / (0.3 * sprite.spec.half_width_px)), 0.0, 1.0)
    shade = (0.30 + 0.70 * lambert) * rim
    albedo = sprite.albedo_rgb[:, body[0], body[1]]
    if sprite.fracture is not None:
        # A broken face shows the uncoated whitish core, rough and unpolished, so grainy and dim.
        fracture = sprite.fracture[body]
        albedo = albedo + (0.6 * fracture) * (_CORE_RGB - albedo)
        shade *= 1.0 - fracture * (0.30 + 0.15 * sprite.grain[body])
    body_alpha = np.clip(sprite.cut_px[body] + 0.5, 0.0, 1.0)
    premul = np.zeros((3, sprite.rows_px, sprite.cols_px), np.float32)
    alpha = np.zeros((sprite.rows_px, sprite.cols_px), np.float32)
    premul[:, body[0], body[1]] = albedo * (shade * body_alpha)
    alpha[body] = body_alpha
    if sprite.overlay_alpha is not None:
        keep = 1.0 - sprite.overlay_alpha
        premul = premul * keep + sprite.overlay_premul_rgb
        alpha = alpha * keep + sprite.overlay_alpha
    return cv2.merge([premul[0], premul[1], premul[2], alpha])
