"""Synthetic line-camera images of pharmaceutical tablets, for training and for a simulated line.

Pure numpy + OpenCV; no torch, no file I/O except `write_dataset`.
`product=` picks one product of `products.PRODUCTS` for every item, as one lot of a line; the
default `mixed` makes every item a random product.
"""

from inspection.synthetic.dataset import write_dataset
from inspection.synthetic.render import (
    CLASSES,
    DEFECT_CLASSES,
    GENERATOR_VERSION,
    RenderedItem,
    label_for_index,
    render_item,
)

__all__ = [
    "CLASSES",
    "DEFECT_CLASSES",
    "GENERATOR_VERSION",
    "RenderedItem",
    "label_for_index",
    "render_item",
    "write_dataset",
]
