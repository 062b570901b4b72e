"""Small real image files and folder datasets for tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), array)
    return path


def blob_image(rng: np.random.Generator, size_px: int, bright: bool, channels: int = 3) -> np.ndarray:
    """A trivially separable two-class picture: a bright or a dark disc on noise."""
    image = rng.integers(60, 100, size=(size_px, size_px), dtype=np.uint8)
    centre = (int(rng.integers(size_px // 3, 2 * size_px // 3)), int(rng.integers(size_px // 3, 2 * size_px // 3)))
    cv2.circle(image, centre, size_px // 4, 230 if bright else 10, -1)
    return np.dstack([image] * 3) if channels == 3 else image


def make_two_class_dataset(root: Path, per_class: int = 20, size_px: int = 48, seed: int = 0, channels: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    for label, bright in (("good", True), ("defect", False)):
        for i in range(per_class):
            write_png(root / label / f"{label}_{i:03d}.png", blob_image(rng, size_px, bright, channels))
    return root
