"""Training throughput: the real loop (augmentation included) and the model's forward+backward alone.

The loop's figure is its steady pace, from the epochs after the first: the first carries the start-up
(cuDNN's algorithm search, the allocator, the first checkpoint), which on a GPU is likely most of a
short run: the first H100 bench's 2-epoch loop said 65-288 images/s, where real default-recipe runs
there reached 416-607."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inspection.input_spec import default_input_spec
from inspection.preprocess import prepare
from inspection.synthetic.render import CLASSES, render_item
from training.models import build_classifier
from training.recipe import TrainRecipe
from training.trainer import LabeledImages, resolve_device, train_classifier

IMAGES = 256
EPOCHS = 3
COMPUTE_STEPS = 20


def measure_training(model: str, size_px: int, batch_size: int, device: str) -> dict:
    device = resolve_device(device)
    spec = default_input_spec(size_px, 3)
    images = np.stack([prepare(render_item(3, i, CLASSES[i % len(CLASSES)], 320, 240).image, spec) for i in range(IMAGES)])
    labels = np.arange(IMAGES) % len(CLASSES)
    data = LabeledImages(images, labels.astype(np.int64))
    recipe = TrainRecipe(model=model, image_size_px=size_px, epochs=EPOCHS, batch_size=batch_size, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        loop = train_classifier(data, LabeledImages(images[:0], labels[:0]), list(CLASSES), spec, recipe, Path(tmp),
                                "bench", progress=False, good_classes=("good",))
    return {"model": model, "size_px": size_px, "batch_size": batch_size, "device": device,
            "loop_images_per_s": round(steady_images_per_s(loop.history, len(images) // batch_size * batch_size), 1),
            "run_images_per_s": round(loop.train_images_per_s, 1),
            "compute_images_per_s": round(_compute_only(model, spec, batch_size, device), 1)}


def steady_images_per_s(history: list[dict], images_per_epoch: int) -> float:
    """Images per second over the epochs after the first (all of them when there is only one)."""
    steady = history[1:] or history
    return images_per_epoch * len(steady) / sum(epoch["seconds"] for epoch in steady)


def _compute_only(model_name: str, spec, batch_size: int, device: str) -> float:
    model = build_classifier(model_name, len(CLASSES), spec).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    batch = torch.randint(0, 256, (batch_size, spec.size_px, spec.size_px, 3), dtype=torch.uint8, device=device)
    target = torch.randint(0, len(CLASSES), (batch_size,), device=device)

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
            loss = torch.nn.functional.cross_entropy(model(batch).float(), target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(COMPUTE_STEPS):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return COMPUTE_STEPS * batch_size / (time.perf_counter() - started)
