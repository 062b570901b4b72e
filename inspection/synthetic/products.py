"""A small catalogue of named products, as a line runs them: one product per lot.

A production line inspects one product at a time and a classifier is trained per product. With
`mixed` (the default) every item is a random product: shape, colour, size, marking, belt or
blister all change from image to image, and a classifier trained from scratch on a few hundred
images per class learns the products instead of the defects. A named product fixes what a lot
fixes (shape, size, aspect, colours, marking and its font, gloss, presentation) and leaves to
every item what varies on a line: position and rotation, small size and colour jitter, lighting
drift, blur, sensor noise and the crop of the belt or foil texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspection.errors import ConfigError
from inspection.synthetic.backgrounds import Background, belt, blister
from inspection.synthetic.tablet import Shape, TabletSpec, jitter_colour, place_tablet

MIXED = "mixed"

_SIZE_JITTER = 0.025  # long axis, as a share of the short frame side, either way
_ASPECT_JITTER = 0.03
_GLOSS_JITTER = 0.03


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    shape: Shape
    length: float  # long axis as a share of the short frame side (0.45-0.70, as for mixed)
    aspect: float  # long / short axis; 1 for round
    colour_rgb: tuple[int, int, int]  # a capsule's body
    cap_colour_rgb: tuple[int, int, int] | None  # a capsule's cap; None: the colour_rgb
    marking: str  # "none", "score", "text" or "score_text" (two glyphs, one each side of the score)
    text: str
    font: int  # 0 Hershey simplex, 1 Hershey duplex
    gloss: float
    belt_rgb: tuple[int, int, int] | None  # the belt's colour; None: in a blister pocket

    def describe(self) -> dict:
        """What the lot fixes, for synth.json."""
        return {"name": self.name, "shape": str(self.shape), "length_of_short_side": self.length,
                "aspect": self.aspect, "colour_rgb": list(self.colour_rgb),
                "cap_colour_rgb": list(self.cap_colour_rgb or self.colour_rgb), "marking": self.marking,
                "text": self.text, "gloss": self.gloss,
                "presentation": "blister" if self.belt_rgb is None else "belt",
                "belt_rgb": None if self.belt_rgb is None else list(self.belt_rgb)}

    def sample_tablet(self, rng: np.random.Generator, width_px: int, height_px: int) -> TabletSpec:
        """One item of this product at a random pose, with a line's small size and colour jitter."""
        length_px = rng.uniform(self.length - _SIZE_JITTER, self.length + _SIZE_JITTER) * min(width_px, height_px)
        aspect = 1.0 if self.shape is Shape.ROUND else rng.uniform(self.aspect - _ASPECT_JITTER,
                                                                  self.aspect + _ASPECT_JITTER)
        colour = jitter_colour(rng, self.colour_rgb)
        cap_colour = jitter_colour(rng, self.cap_colour_rgb) if self.cap_colour_rgb else colour
        gloss = rng.uniform(self.gloss - _GLOSS_JITTER, self.gloss + _GLOSS_JITTER)
        return place_tablet(rng, width_px, height_px, shape=self.shape, length_px=length_px, aspect=aspect,
                            colour=colour, cap_colour=cap_colour, marking=self.marking, text=self.text,
                            gloss=gloss, seam_range=(-0.07, -0.05), font=self.font)

    def sample_background(self, rng: np.random.Generator, spec: TabletSpec, width_px: int,
                          height_px: int) -> Background:
        """This product's belt, or its blister foil: one material, a random crop of its texture."""
        if self.belt_rgb is None:
            return blister(rng, spec, width_px, height_px, foil_grey=(160.0, 176.0), crop=True)
        return belt(rng, width_px, height_px, colour_rgb=self.belt_rgb, brightness=(0.95, 1.05))


_DARK_GREY_BELT, _NEAR_BLACK_BELT, _DARK_GREEN_BELT, _DARK_BLUE_BELT = (
    (58, 60, 62), (36, 36, 38), (42, 74, 56), (40, 58, 90))

PRODUCTS: dict[str, Product] = {p.name: p for p in (
    Product("white-round-scored", Shape.ROUND, 0.52, 1.0, (243, 243, 239), None, "score", "", 0, 0.12,
            _DARK_GREY_BELT),
    Product("yellow-oval-embossed", Shape.OVAL, 0.62, 1.45, (240, 226, 152), None, "text", "XR", 1, 0.18, None),
    Product("red-blue-capsule", Shape.CAPSULE, 0.66, 2.45, (200, 64, 60), (70, 100, 178), "none", "", 0, 0.42,
            _NEAR_BLACK_BELT),
    Product("white-capsule", Shape.CAPSULE, 0.64, 2.3, (243, 243, 239), None, "none", "", 0, 0.38, None),
    Product("orange-round-text", Shape.ROUND, 0.50, 1.0, (240, 154, 74), None, "text", "10", 0, 0.20,
            _DARK_GREEN_BELT),
    Product("pink-oval", Shape.OVAL, 0.58, 1.35, (236, 184, 194), None, "none", "", 0, 0.15, _DARK_BLUE_BELT),
    Product("blue-round-score-text", Shape.ROUND, 0.55, 1.0, (174, 203, 234), None, "score_text", "A M", 1, 0.10,
            None),
    Product("cream-oval-scored", Shape.OVAL, 0.60, 1.5, (238, 225, 190), None, "score", "", 0, 0.10,
            _NEAR_BLACK_BELT),
)}
PRODUCT_NAMES: tuple[str, ...] = (MIXED, *PRODUCTS)


def check_product(name: str) -> None:
    if not isinstance(name, str) or (name != MIXED and name not in PRODUCTS):
        raise ConfigError(f"unknown product {name!r}; expected one of {', '.join(PRODUCT_NAMES)}")


def lookup(name: str) -> Product | None:
    """The catalogue entry of a product name; None for `mixed`; ConfigError for any other name."""
    check_product(name)
    return PRODUCTS.get(name)
