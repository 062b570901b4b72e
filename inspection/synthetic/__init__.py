"""Synthetic line-camera images of pharmaceutical tablets, for training and for a simulated line.

Pure numpy + OpenCV; no torch, no file I/O except `write_dataset`.
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
