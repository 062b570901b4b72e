"""The training recipe: every choice that shapes a model, recorded in the bundle."""

from __future__ import annotations

from pydantic import Field

from inspection.input_spec import ShrinkMode
from inspection.validation import StrictModel


class TrainRecipe(StrictModel):
    model: str = "mobilenet_v3_small"
    image_size_px: int = Field(default=128, ge=32, le=1024)
    # Share of the frame's short side cropped around the item before resizing (None: whole frame).
    item_crop_fraction: float | None = Field(default=0.6, ge=0.2, le=1.0)
    # How frames shrink to image_size_px (inspection.input_spec.ShrinkMode), recorded in the bundle's input spec.
    shrink: ShrinkMode = ShrinkMode.BOX_THEN_LINEAR
    # Serve the mean of the probabilities over the item's 8 orientations (inside model.onnx; see
    # inspection.backends.torch_model.WithSoftmax). Costs 8 model passes per item at the station.
    orientation_average: bool = True
    epochs: int = Field(default=100, ge=1, le=1000)
    # Train fewer epochs than `epochs` where they would not fit this many seconds at the first
    # epoch's pace (None: always `epochs`). The plan is kept in the checkpoint, so --resume repeats it.
    # The default is 10 minutes less 5%, room for the pace to vary after the first epoch.
    time_budget_s: float | None = Field(default=570.0, gt=0)
    batch_size: int = Field(default=32, ge=2, le=4096)
    learning_rate: float = Field(default=3e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    # Each epoch draws its images with chances 1 + min(loss / mean loss, boost), each image's loss as
    # last seen (0: every image once, shuffled). See training.trainer.epoch_order.
    hard_example_boost: float = Field(default=4.0, ge=0)
    # Weight of the good-versus-defect term added to the cross-entropy (training.loss; 0: off).
    good_vs_defect_weight: float = Field(default=1.0, ge=0)
    # Exponential moving average of the weights, evaluated and kept instead of the raw weights
    # (0: off). From-scratch training on a few thousand images is noisy from step to step.
    ema_decay: float = Field(default=0.995, ge=0, lt=1)
    warmup_epochs: float = Field(default=1.0, ge=0)
    patience_epochs: int = Field(default=15, ge=1)
    seed: int = 0
    device: str = "auto"
    max_escape_rate: float = Field(default=0.005, ge=0, le=1)
    weights: str | None = None
