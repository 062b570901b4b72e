"""The torch module our bundles hold: uint8 NHWC in, normalisation inside the graph.

Shared by training (which trains and exports it) and the torch backend (which rebuilds it from a
bundle's architecture name and weights.safetensors). Only imported when torch is wanted.
"""

from __future__ import annotations

import torch
from torch import nn

from inspection.input_spec import InputSpec


class InspectionClassifier(nn.Module):
    """uint8 (N, H, W, C) -> logits (N, classes).

    Keeping cast, normalisation and layout change inside the model means the station hands the
    runtime the camera's uint8 pixels; the float math then runs inside ONNX Runtime / TensorRT /
    torch instead of competing with it for the CPU in numpy (DESIGN.md, performance notes).
    """

    def __init__(self, backbone: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.expand_grey = spec.channels == 1
        scale = 255.0
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1) * scale)
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1) * scale)

    def forward(self, images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
        # permute keeps the NHWC memory order: the result is an NCHW view in channels_last layout.
        x = images_nhwc_uint8.permute(0, 3, 1, 2).to(self.mean.dtype)
        x = (x - self.mean) / self.std
        if self.expand_grey:
            x = x.expand(-1, 3, -1, -1)
        return self.backbone(x)


ORIENTATIONS = 8


def dihedral_views(images_nhwc: torch.Tensor) -> torch.Tensor:
    """(N, S, S, C) square images -> (8N, S, S, C): the 4 quarter turns of each, and their mirrors,
    stacked orientation by orientation (all first views, then all second views, ...)."""
    turned = images_nhwc.transpose(1, 2)
    return torch.cat([
        images_nhwc, images_nhwc.flip(1), images_nhwc.flip(2), images_nhwc.flip((1, 2)),
        turned, turned.flip(1), turned.flip(2), turned.flip((1, 2)),
    ])


def orientation_probabilities(classifier: nn.Module, images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
    """(8, N, classes): the classifier's probabilities for each of the 8 orientations of each image."""
    probabilities = torch.softmax(classifier(dihedral_views(images_nhwc_uint8)).float(), dim=1)
    # int(): the class count becomes a constant of an exported graph, so its output shape says it.
    return probabilities.reshape(ORIENTATIONS, -1, int(probabilities.shape[1]))


class WithSoftmax(nn.Module):
    """What we export and serve: probabilities, so every backend returns the same quantity.

    With `orientation_average`, the probabilities are the mean over the item's 8 orientations.
    A tablet on a conveyor has no up or down, so its class cannot depend on the orientation; a
    model trained from scratch on a few hundred items per class is only roughly invariant, and
    its single-view accuracy swings by a few points from one orientation to the next. The average
    is invariant by construction and sits inside the graph, so every backend serves the same thing.
    """

    def __init__(self, classifier: nn.Module, orientation_average: bool = False) -> None:
        super().__init__()
        self.classifier = classifier
        self.orientation_average = orientation_average

    def forward(self, images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
        if not self.orientation_average:
            return torch.softmax(self.classifier(images_nhwc_uint8).float(), dim=1)
        return orientation_probabilities(self.classifier, images_nhwc_uint8).mean(0)
