"""The training recipe: every choice that shapes a model, recorded in the bundle."""

from __future__ import annotations

from pydantic import Field

from inspection.validation import StrictModel


class TrainRecipe(StrictModel):
    model: str = "mobilenet_v3_small"
    image_size_px: int = Field(default=160, ge=32, le=1024)
    epochs: int = Field(default=40, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=2, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    warmup_epochs: float = Field(default=1.0, ge=0)
    patience_epochs: int = Field(default=15, ge=1)
    seed: int = 0
    device: str = "auto"
    max_escape_rate: float = Field(default=0.005, ge=0, le=1)
    weights: str | None = None
