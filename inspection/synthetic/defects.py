"""Defect painters: each edits a tablet sprite in place, before it is shaded and rotated.

Sizes scale with the tablet and the frame, with floors in pixels of the frame's short side
(`frame_min_px`), so the subtlest defect of each class stays visible at 224 px. The classes are
kept apart on purpose: a chip is a small bite in the rim, a break removes a quarter to half of
the tablet, a crack is a thin jagged dark line from the rim, a spot is a small soft round stain,
a discolouration is a large soft tint, and a foreign particle is sharp-edged with a shadow.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from inspection.synthetic import textures
from inspection.synthetic.tablet import FIBRE_OVERSHOOT, Sprite, Window, inside_distance_at, planar, rim_radius_px

_STAINS_RGB = ((92, 62, 40), (70, 70, 72), (45, 36, 30), (135, 84, 46), (82, 88, 70))
_TINTS_RGB = ((214, 184, 96), (150, 108, 66), (138, 138, 134), (176, 124, 86))
_PARTICLE_RGB = ((70, 74, 82), (100, 104, 112), (40, 40, 44), (58, 50, 46))
_FIBRE_RGB = ((40, 34, 30), (66, 56, 48), (52, 72, 150), (150, 46, 46), (30, 30, 34), (212, 210, 202))


def _luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


_RGB_TO_XYZ = np.asarray([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE_XYZ = np.asarray([0.9505, 1.0, 1.089])


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab of (N, 3) sRGB colours 0..255 (numpy: cv2.cvtColor costs 0.5 ms a call here)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_XYZ
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], 1)


def _delta_e(rgb: np.ndarray, others_rgb: np.ndarray) -> np.ndarray:
    """CIE76 colour difference between one colour and each of several, all given as 0..255 RGB."""
    lab = _lab(np.vstack([rgb, others_rgb]))
    return np.linalg.norm(lab[1:] - lab[0], axis=1)


def _contrasting(sprite: Sprite, rng: np.random.Generator, palette, x_px: float, y_px: float,
                 also_against_rgb: np.ndarray | None = None) -> np.ndarray:
    """A random palette colour that stands out (delta E >= 30) from the tablet at a point (and
    from a second colour, when given)."""
    col, row = sprite.index_of(x_px, y_px)
    under = sprite.albedo_rgb[:, row, col]
    colours = np.asarray(palette, np.float32)
    shifts = _delta_e(under, colours)
    if also_against_rgb is not None:
        shifts = np.minimum(shifts, _delta_e(np.asarray(also_against_rgb, np.float64), colours))
    usable = np.flatnonzero(shifts >= 30.0)
    if usable.size == 0:
        return colours[int(np.argmax(shifts))]
    return colours[usable[int(rng.integers(usable.size))]]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _rim_point(sprite: Sprite, angle_rad: float, scale: float = 1.0) -> tuple[float, float]:
    radius_px = rim_radius_px(sprite.spec, angle_rad) * scale
    return radius_px * math.cos(angle_rad), radius_px * math.sin(angle_rad)


def _point_inside(sprite: Sprite, rng: np.random.Generator, margin_px: float) -> tuple[float, float]:
    """A random point at least margin_px inside the rim (rejection sampling; centre as fallback)."""
    margin_px = min(margin_px, 0.8 * sprite.spec.half_width_px)
    a, b = sprite.spec.half_length_px, sprite.spec.half_width_px
    for _ in range(40):
        x, y = float(rng.uniform(-a, a)), float(rng.uniform(-b, b))
        if inside_distance_at(sprite.spec, x, y) >= margin_px:
            return x, y
    return 0.0, 0.0


def _window_offsets(sprite: Sprite, window: tuple[slice, slice], x_px: float, y_px: float):
    return sprite.x_px[window] - x_px, sprite.y_px[window] - y_px


def _mark_fracture(sprite: Sprite, window, kept_px: np.ndarray, band_px: float) -> None:
    """Exposed broken surface: a band along the new edge where it cuts into the tablet."""
    band = np.clip(1.0 - kept_px / band_px, 0.0, 1.0) * (kept_px < sprite.inside_px[window])
    if sprite.fracture is None:
        sprite.fracture = np.zeros_like(sprite.inside_px)
    np.maximum(sprite.fracture[window], band, out=sprite.fracture[window])


def _box_around(sprite: Sprite, points_px: np.ndarray, pad_px: float) -> Window:
    """The sprite window holding these points (centred coordinates) and pad_px around them."""
    low, high = points_px.min(axis=0) - pad_px, points_px.max(axis=0) + pad_px
    return sprite.box(float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def _planes(array: np.ndarray, window: Window) -> np.ndarray:
    """The window of a planar (3, rows, cols) array, as a writable view."""
    return array[:, window[0], window[1]]


def _polyline_mask(sprite: Sprite, points_px: np.ndarray, thickness_px: int, window: Window,
                   closed: bool = False, fill: bool = False) -> np.ndarray:
    """0..1 float mask, shaped like window, of an antialiased polyline or polygon given in
    centred coordinates. Drawing only the window keeps small defects cheap."""
    rows, cols = window
    mask = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.uint8)
    origin = np.asarray((cols.start - (sprite.cols_px - 1) / 2.0, rows.start - (sprite.rows_px - 1) / 2.0))
    pixel = np.round((points_px - origin) * 8).astype(np.int32)
    if fill:
        cv2.fillPoly(mask, [pixel], 255, cv2.LINE_AA, shift=3)
    else:
        cv2.polylines(mask, [pixel], closed, 255, thickness_px, cv2.LINE_AA, shift=3)
    return mask.astype(np.float32) * (1.0 / 255.0)


def _shifted_shadow(sprite: Sprite, mask: np.ndarray, distance_px: float) -> np.ndarray:
    """The mask moved away from the lamp and softened: the shadow an object casts on the tablet."""
    lx, ly, _ = sprite.light_xyz
    norm = math.hypot(lx, ly)
    moved = cv2.warpAffine(mask, np.float32([[1, 0, -lx / norm * distance_px], [0, 1, -ly / norm * distance_px]]),
                           (mask.shape[1], mask.shape[0]))
    return cv2.GaussianBlur(moved, (0, 0), 0.8)


def chip(sprite: Sprite, rng: np.random.Generator) -> None:
    """A small bite out of the rim with a darker, rough exposed edge."""
    spec = sprite.spec
    mean_radius_px = math.sqrt(spec.half_length_px * spec.half_width_px)
    radius_px = float(np.clip(rng.uniform(0.12, 0.24) * mean_radius_px,
                              0.04 * sprite.frame_min_px, 0.6 * spec.half_width_px))
    angle = rng.uniform(0.0, 2 * math.pi)
    rim_x, rim_y = _rim_point(sprite, angle)
    out = radius_px * rng.uniform(0.0, 0.25)  # the bite goes at least 3/4 of its radius deep
    cx, cy = rim_x + out * math.cos(angle), rim_y + out * math.sin(angle)
    window = sprite.window(cx, cy, radius_px * 1.3)
    dx, dy = _window_offsets(sprite, window, cx, cy)
    # A fracture is never a clean circle: wobble the bite's radius around its centre.
    around = np.arctan2(dy, dx)
    p1, p2 = (float(p) for p in rng.uniform(0, 2 * math.pi, size=2))
    wobble = 1.0 + 0.10 * np.sin(int(rng.integers(3, 6)) * around + p1) + 0.06 * np.sin(9 * around + p2)
    kept = np.sqrt(dx * dx + dy * dy) - radius_px * wobble
    np.minimum(sprite.cut_px[window], kept, out=sprite.cut_px[window])
    _mark_fracture(sprite, window, kept, max(2.0, 0.35 * radius_px))


def break_off(sprite: Sprite, rng: np.random.Generator) -> None:
    """A quarter to a half of the tablet gone along a jagged fracture; maybe a loose fragment."""
    spec = sprite.spec
    angle = rng.uniform(0.0, 2 * math.pi)
    nx, ny = math.cos(angle), math.sin(angle)
    reach_px = rim_radius_px(spec, angle)
    offset_px = rng.uniform(0.0, 0.40) * reach_px  # chord at 0.4 r leaves 25% off; at 0 half
    # Jagged but without drift (a random walk pinned to zero at both ends), so the missing share
    # stays close to the one the chord offset sets.
    knots_u = np.linspace(-0.75 * spec.length_px, 0.75 * spec.length_px, 14)
    walk = np.cumsum(rng.normal(0.0, 0.025 * spec.length_px, size=14))
    walk -= np.linspace(walk[0], walk[-1], 14)
    knots_jag = walk + rng.normal(0.0, 0.012 * spec.length_px, size=14)
    body = sprite.body
    body_x, body_y = sprite.x_px[body], sprite.y_px[body]
    u = body_x * -ny + body_y * nx
    jag = np.interp(u.ravel(), knots_u, knots_jag).reshape(u.shape).astype(np.float32)
    kept = offset_px + jag - (body_x * nx + body_y * ny)
    np.minimum(sprite.cut_px[body], kept, out=sprite.cut_px[body])
    _mark_fracture(sprite, body, kept, max(2.0, 0.09 * spec.half_width_px))

    fragment_px = rng.uniform(0.12, 0.22) * spec.half_width_px
    gap_px = rng.uniform(0.08, 0.2) * spec.half_width_px
    room_px = reach_px - offset_px - gap_px - 2.2 * fragment_px
    if rng.random() < 0.5 and room_px > 0:
        along = offset_px + gap_px + 1.1 * fragment_px + rng.uniform(0.0, room_px)
        side = rng.uniform(-0.3, 0.3) * spec.half_width_px
        fx, fy = along * nx - side * ny, along * ny + side * nx
        corners = np.sort(rng.uniform(0.0, 2 * math.pi, size=int(rng.integers(5, 8))))
        radii = fragment_px * rng.uniform(0.65, 1.1, size=corners.size)
        polygon = np.stack([fx + radii * np.cos(corners), fy + radii * np.sin(corners)], 1)
        window = _box_around(sprite, polygon, 1.0)
        coverage = _polyline_mask(sprite, polygon, 1, window, fill=True)
        base = planar(spec.colour_rgb) * 0.82
        sprite.paint_overlay(coverage, base * (1.0 + 0.05 * sprite.grain[window]), window)
        sprite.paint_overlay(_polyline_mask(sprite, polygon, 1, window, closed=True) * 0.5, base * 0.6, window)


def crack(sprite: Sprite, rng: np.random.Generator) -> None:
    """A thin dark jagged line from the rim into the tablet, which is otherwise whole."""
    spec = sprite.spec
    length_px = rng.uniform(0.35, 0.8) * spec.length_px
    trunk = _crack_path(sprite, rng, length_px)
    paths = [trunk]
    if rng.random() < 0.35 and len(trunk) > 4:
        fork = trunk[int(rng.integers(2, len(trunk) - 1))]
        away = trunk[-1] - trunk[0]
        turn = rng.choice((-1.0, 1.0)) * rng.uniform(0.4, 0.9)
        branch = _random_walk(sprite, rng, fork, math.atan2(away[1], away[0]) + turn, 0.4 * length_px, 0.0)
        paths.append(branch)
    scale = sprite.frame_min_px / 224.0
    thickness_px = max(1, int(round(rng.uniform(1.0, 2.2) * scale)))
    window = _box_around(sprite, np.concatenate(paths), thickness_px + 1.0)
    mask = _polyline_mask(sprite, paths[0], thickness_px, window)
    for path in paths[1:]:
        np.maximum(mask, _polyline_mask(sprite, path, thickness_px, window), out=mask)
    darkness = rng.uniform(0.5, 0.8)
    _planes(sprite.albedo_rgb, window)[...] *= 1.0 - darkness * mask
    sprite.relief_px[window] -= (0.8 * max(1.0, spec.half_width_px / 60.0)) * mask  # a groove catches light on one lip


def _crack_path(sprite: Sprite, rng: np.random.Generator, length_px: float) -> np.ndarray:
    """A walk that starts just outside the rim, heads inwards and runs at least 30% of the length."""
    min_length_px = 0.3 * sprite.spec.length_px
    path = np.zeros((0, 2))
    for _ in range(12):
        angle = rng.uniform(0.0, 2 * math.pi)
        start = np.asarray(_rim_point(sprite, angle, 1.0)) + 1.5 * np.asarray((math.cos(angle), math.sin(angle)))
        target = np.asarray(_point_inside(sprite, rng, 0.4 * sprite.spec.half_width_px))
        heading = math.atan2(target[1] - start[1], target[0] - start[0])
        path = _random_walk(sprite, rng, start, heading, length_px, min_length_px)
        if _path_length_px(path) >= min_length_px:
            break
    return path


def _path_length_px(path: np.ndarray) -> float:
    return float(np.hypot(*np.diff(path, axis=0).T).sum()) if len(path) > 1 else 0.0


def _random_walk(sprite: Sprite, rng: np.random.Generator, start: np.ndarray, heading: float,
                 length_px: float, min_length_px: float) -> np.ndarray:
    """Jagged path; it stops at the rim once past min_length_px (and gives up if it leaves before)."""
    step_px = max(2.0, rng.uniform(0.04, 0.07) * sprite.spec.length_px)
    points = [start]
    drift = 0.0
    travelled_px = 0.0
    while travelled_px < length_px:
        drift = float(np.clip(drift + rng.normal(0.0, 0.3), -0.5, 0.5))
        x, y = points[-1]
        step = step_px * rng.uniform(0.6, 1.3)
        nxt = np.asarray((x + step * math.cos(heading + drift), y + step * math.sin(heading + drift)))
        travelled_px += step
        if travelled_px > 2 * step_px and inside_distance_at(sprite.spec, float(nxt[0]), float(nxt[1])) < 0.5:
            if travelled_px >= min_length_px:
                points.append(nxt)  # reached the rim on the far side
            break
        points.append(nxt)
    return np.asarray(points)


def spot(sprite: Sprite, rng: np.random.Generator) -> None:
    """One to three soft round stains, each clearly darker than the tablet under it."""
    spec = sprite.spec
    for _ in range(int(rng.integers(1, 4))):
        radius_px = float(np.clip(rng.uniform(0.015, 0.06) * sprite.frame_min_px,
                                  3.5 * sprite.frame_min_px / 224, 0.45 * spec.half_width_px))
        cx, cy = _point_inside(sprite, rng, 0.9 * radius_px + 1.0)
        col, row = sprite.index_of(cx, cy)
        under = sprite.albedo_rgb[:, row, col]
        dark_enough = [s for s in _STAINS_RGB if _luma(s) <= 0.6 * _luma(under)]
        stain = (dark_enough[int(rng.integers(len(dark_enough)))] if dark_enough
                 else min(_STAINS_RGB, key=_luma))
        opacity = rng.uniform(0.55, 0.9)
        softness = rng.uniform(0.25, 0.5)
        squash, turn = rng.uniform(0.7, 1.0), rng.uniform(0.0, math.pi)
        window = sprite.window(cx, cy, radius_px)
        dx, dy = _window_offsets(sprite, window, cx, cy)
        u = dx * math.cos(turn) + dy * math.sin(turn)
        v = (dy * math.cos(turn) - dx * math.sin(turn)) / squash
        cover = opacity * _smoothstep((radius_px - np.sqrt(u * u + v * v)) / (softness * radius_px))
        patch = _planes(sprite.albedo_rgb, window)
        patch += cover * (planar(stain) - patch)


def discolour(sprite: Sprite, rng: np.random.Generator) -> None:
    """A large soft region, 30-70% of the tablet, yellowed, browned or greyed, maybe mottled."""
    spec = sprite.spec
    # An off-centre blob, so part of the tablet keeps its own colour and the boundary shows.
    fraction = rng.uniform(0.3, 0.7)
    angle = rng.uniform(0.0, 2 * math.pi)
    off_centre = rng.uniform(0.3, 0.7)
    reach_px = rim_radius_px(spec, angle) * off_centre
    cx, cy = reach_px * math.cos(angle), reach_px * math.sin(angle)
    grow = math.sqrt(fraction) * (1.0 + 0.45 * off_centre)  # make up for the part beyond the rim
    ra, rb = spec.half_length_px * grow, spec.half_width_px * grow
    # The region is smooth: shape it on a 4x coarser grid over the tablet, then resize.
    body = sprite.body
    body_x, body_y = sprite.x_px[body][0], sprite.y_px[body][:, 0]
    coarse_h, coarse_w = max(4, len(body_y) // 4), max(4, len(body_x) // 4)
    xs = np.linspace(body_x[0], body_x[-1], coarse_w, dtype=np.float32)[None, :]
    ys = np.linspace(body_y[0], body_y[-1], coarse_h, dtype=np.float32)[:, None]
    wobble = textures.low_frequency(rng, coarse_h, coarse_w, 5)
    u, v = (xs - cx) * (1.0 / ra), (ys - cy) * (1.0 / rb)
    reach = np.sqrt(u * u + v * v) + 0.25 * wobble
    softness = rng.uniform(0.15, 0.35)
    cover = _smoothstep((1.0 + softness / 2 - reach) / softness)
    if rng.random() < 0.35:
        mottle = textures.low_frequency(rng, coarse_h, coarse_w, int(rng.integers(6, 10)))
        cover *= np.clip(0.65 + 0.6 * mottle, 0.3, 1.0)
    cover = cv2.resize(cover, (len(body_x), len(body_y)), interpolation=cv2.INTER_LINEAR)
    strength = rng.uniform(0.35, 0.85)
    col, row = sprite.index_of(cx, cy)
    base = sprite.albedo_rgb[:, row, col]
    tints = np.asarray(_TINTS_RGB, np.float32)
    # Keep only tints that move this tablet's colour by a clearly visible amount (CIE76 delta E).
    shifts = _delta_e(base, base + strength * (tints - base))
    usable = np.flatnonzero(shifts >= 25.0)
    if usable.size:
        tint = tints[usable[int(rng.integers(usable.size))]]
    else:
        tint, strength = tints[int(np.argmax(_delta_e(base, tints)))], 1.0
    albedo = _planes(sprite.albedo_rgb, body)
    albedo += (strength * cover) * (planar(tint) - albedo)


def foreign_particle(sprite: Sprite, rng: np.random.Generator) -> None:
    """Something that does not belong: a dark angular shard with a glint, or a fibre or hair."""
    if rng.random() < 0.55:
        _shard(sprite, rng)
    else:
        _fibre(sprite, rng)


def _shard(sprite: Sprite, rng: np.random.Generator) -> None:
    radius_px = float(np.clip(rng.uniform(0.03, 0.06) * sprite.frame_min_px,
                              6.0 * sprite.frame_min_px / 224, 0.6 * sprite.spec.half_width_px))
    cx, cy = _point_inside(sprite, rng, radius_px + 0.15 * sprite.spec.half_width_px)
    # Corners spread around the centre, so the shard is angular but never a hairline sliver.
    count = int(rng.integers(4, 7))
    corners = (np.arange(count) + rng.uniform(-0.3, 0.3, size=count)) * (2 * math.pi / count) + rng.uniform(0, 6.3)
    radii = radius_px * rng.uniform(0.6, 1.0, size=count)
    polygon = np.stack([cx + radii * np.cos(corners), cy + radii * np.sin(corners)], 1)
    shadow_shift_px = max(1.5, 0.3 * radius_px)
    window = _box_around(sprite, polygon, shadow_shift_px + 4.0)
    cover = _polyline_mask(sprite, polygon, 1, window, fill=True)
    _planes(sprite.albedo_rgb, window)[...] *= 1.0 - 0.5 * _shifted_shadow(sprite, cover, shadow_shift_px)
    # Flat metal facet: a little brighter on the lamp side, then one edge caught as a glint.
    lx, ly, _ = sprite.light_xyz
    ramp = ((sprite.x_px[window] - cx) * lx + (sprite.y_px[window] - cy) * ly) / radius_px
    colour = _contrasting(sprite, rng, _PARTICLE_RGB, cx, cy)
    sprite.paint_overlay(cover, planar(colour) * (1.0 + 0.25 * np.clip(ramp, -1, 1)), window)
    edge_normals = np.roll(polygon, -1, 0) - polygon
    facing = edge_normals[:, 1] * lx - edge_normals[:, 0] * ly  # outward normal . light
    lit = int(np.argmax(facing))
    glint = _polyline_mask(sprite, polygon[[lit, (lit + 1) % len(polygon)]], 1, window)
    sprite.paint_overlay(glint * cover * rng.uniform(0.6, 0.9), np.float32([235, 235, 230]), window)


def _fibre(sprite: Sprite, rng: np.random.Generator) -> None:
    spec = sprite.spec
    # From a point well inside the tablet, out across the rim and a little beyond it.
    for _ in range(12):
        start = np.asarray(_point_inside(sprite, rng, 0.3 * spec.half_width_px))
        angle = rng.uniform(0.0, 2 * math.pi)
        rim = np.asarray(_rim_point(sprite, angle, 1.0))
        if np.hypot(*(rim - start)) >= 0.35 * spec.length_px:
            break
    beyond = rim - start
    end = rim + beyond / np.hypot(*beyond) * rng.uniform(0.05, FIBRE_OVERSHOOT) * spec.length_px
    normal = np.asarray((-beyond[1], beyond[0])) / np.hypot(*beyond)
    bend = np.hypot(*(end - start)) * rng.uniform(-0.2, 0.2, size=2)
    c1 = start + (end - start) / 3 + bend[0] * normal
    c2 = start + 2 * (end - start) / 3 + bend[1] * normal
    t = np.linspace(0.0, 1.0, 40)[:, None]
    curve = (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
    # A bent fibre may bulge further out: keep it within the sprite and its reach.
    radius = np.maximum(np.hypot(curve[:, 0], curve[:, 1]), 1e-6)
    curve *= np.minimum(1.0, (sprite.reach_px - 2.0) / radius)[:, None]
    curve[:, 0] = np.clip(curve[:, 0], -(sprite.cols_px - 5) / 2.0, (sprite.cols_px - 5) / 2.0)
    curve[:, 1] = np.clip(curve[:, 1], -(sprite.rows_px - 5) / 2.0, (sprite.rows_px - 5) / 2.0)
    thickness_px = max(1, int(round(rng.uniform(0.9, 2.0) * sprite.frame_min_px / 224)))
    window = _box_around(sprite, curve, thickness_px + 5.0)
    cover = _polyline_mask(sprite, curve, thickness_px, window)
    _planes(sprite.albedo_rgb, window)[...] *= 1.0 - 0.35 * _shifted_shadow(sprite, cover, 1.5)
    # A fibre lies on the tablet and on the belt or foil beyond the rim, and is seen on both (it
    # is why gloves and wipes on a pharmaceutical line are blue): it contrasts with both.
    colour = _contrasting(sprite, rng, _FIBRE_RGB, *start, also_against_rgb=sprite.surround_rgb)
    sprite.paint_overlay(cover, colour, window)


def no_defect(sprite: Sprite, rng: np.random.Generator) -> None:
    """Good tablets keep all the benign variation of the scene and gain nothing."""


PAINTERS = {
    "good": no_defect,
    "chipped": chip,
    "cracked": crack,
    "spot": spot,
    "discoloured": discolour,
    "broken": break_off,
    "foreign_particle": foreign_particle,
}
