"""What drove a decision: an occlusion heatmap on the bundle's model.

Each cell of a grid over the model's input is covered in turn with the image's mean colour; the
drop in the defect score (1 - P(good classes)) is that cell's heat. Occlusion needs only forward
passes, so it runs on the exact ONNX model the station ran, with the bundle's own preprocessing:
the map explains the station's model, not a look-alike.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspection.bundle import Bundle
from inspection.input_spec import InputSpec
from inspection.item_crop import item_crop_box
from inspection.preprocess import prepare, to_model_input

GRID = 8
OVERLAY_ALPHA = 0.45


def defect_score(probabilities: np.ndarray, bundle: Bundle) -> np.ndarray:
    good = np.array([name in bundle.meta.good_classes for name in bundle.meta.class_names])
    return 1.0 - probabilities[:, good].sum(axis=1)


def occlusion_heatmap(image: np.ndarray, bundle: Bundle, backend, grid: int = GRID) -> tuple[np.ndarray, float]:
    """(grid x grid heat in [0, 1] where 1 is the cell whose occlusion lowered the defect score most, base defect score)."""
    spec = bundle.meta.input
    base = prepare(image, spec)
    size_h, size_w = base.shape[:2]
    fill = base.reshape(-1, base.shape[2]).mean(axis=0).astype(np.uint8)
    batch = [base]
    for row in range(grid):
        for col in range(grid):
            occluded = base.copy()
            occluded[row * size_h // grid:(row + 1) * size_h // grid, col * size_w // grid:(col + 1) * size_w // grid] = fill
            batch.append(occluded)
    scores = defect_score(backend.infer(to_model_input(np.stack(batch), spec)), bundle)
    drop = np.clip(scores[0] - scores[1:], 0.0, None).reshape(grid, grid)
    peak = float(drop.max())
    return (drop / peak if peak > 1e-6 else drop), float(scores[0])


def overlay(image: np.ndarray, heat: np.ndarray, spec: InputSpec | None = None) -> np.ndarray:
    """The heat map (any grid over the model's input) blended over the RGB or grey image, as RGB
    uint8 at the image's size. With a spec that crops around the item, the map covers that square."""
    rgb = image if image.ndim == 3 else np.dstack([image] * 3)
    height, width = rgb.shape[:2]
    heat = heat.astype(np.float32)
    if spec is not None and spec.item_crop_fraction is not None:
        left, top, side = item_crop_box(image, spec.item_crop_fraction)
        big = np.zeros((height, width), np.float32)
        big[top : top + side, left : left + side] = cv2.resize(heat, (side, side), interpolation=cv2.INTER_CUBIC)
    else:
        big = cv2.resize(heat, (width, height), interpolation=cv2.INTER_CUBIC)
    colours = cv2.applyColorMap(np.clip(big * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return cv2.addWeighted(rgb, 1.0 - OVERLAY_ALPHA, colours, OVERLAY_ALPHA, 0.0)
