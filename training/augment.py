"""Training augmentation for top-down line-camera images (albumentations). Training only.

Chosen for what changes on a real line, and what must not be invented:
- D4 (flips and 90-degree turns) and a small Affine (shift 5%, scale 0.92-1.08, rotate 20 deg):
  items arrive at any orientation and position; D4 is lossless, so no border artefacts that
  could look like a chip or a fragment.
- RandomBrightnessContrast and RandomGamma: lamp ageing and lighting drift.
- GaussianBlur: focus and motion blur at line speed.
- GaussNoise: sensor noise, more visible at short exposure.
Left out on purpose: hue/saturation shifts (discolouration is a defect class), crops and cutout
(they can hide the defect or fake a broken item), elastic warps (they deform shapes).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import albumentations as A
import cv2
import numpy as np


def build_augmentation(seed: int) -> A.Compose:
    return A.Compose(
        [
            A.D4(p=1.0),
            A.Affine(
                translate_percent=(-0.05, 0.05),
                scale=(0.92, 1.08),
                rotate=(-20, 20),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.7),
            A.RandomGamma(gamma_limit=(85, 115), p=0.3),
            A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.1, 1.0), p=0.2),
            A.GaussNoise(std_range=(0.005, 0.02), p=0.3),
        ],
        seed=seed,
    )


def augment_batch(transform: A.Compose, images: np.ndarray) -> np.ndarray:
    """Apply the transform to each image of a (N, H, W, C) uint8 batch."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        result = transform(image=image)["image"]
        out[i] = result.reshape(image.shape)
    return out


def augmented_batches(transform: A.Compose, images: np.ndarray, batches: list[np.ndarray],
                      ahead: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(index, augmented images) for each index array in `batches`, in order. With `ahead`, the
    next batch is augmented on a second thread while the caller trains on this one (OpenCV releases
    the GIL): for a GPU, whose host cores idle while it computes. On a CPU the model's threads
    already use every core (ahead changed nothing on 2 cores: benchmarks/augment_ahead.py). One
    worker takes the batches in order, so the transform draws its random numbers as a plain loop
    does: same batches, bit for bit."""
    if not ahead:
        for index in batches:
            yield index, augment_batch(transform, images[index])
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
        pending = pool.submit(augment_batch, transform, images[batches[0]]) if batches else None
        for number, index in enumerate(batches):
            batch = pending.result()
            if number + 1 < len(batches):
                pending = pool.submit(augment_batch, transform, images[batches[number + 1]])
            yield index, batch
