"""torchvision classifiers, built from scratch (or a local weights file) inside InspectionClassifier."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from inspection.errors import ConfigError, first_line
from inspection.backends.torch_model import InspectionClassifier
from inspection.input_spec import InputSpec
from training.start_checks import check_weights_file

BATCHNORM_MOMENTUM = 0.1


def available_architectures() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_architecture(architecture: str) -> None:
    if architecture not in available_architectures():
        raise ConfigError(
            f"unknown model '{architecture}'. Use a torchvision classifier name, e.g. mobilenet_v3_small, resnet18, "
            "efficientnet_b0 (see torchvision.models.list_models())."
        )


def build_classifier(architecture: str, num_classes: int, spec: InputSpec, weights_path: Path | None = None) -> InspectionClassifier:
    """Build from scratch (nothing is downloaded), optionally loading a local weights file."""
    check_architecture(architecture)
    backbone = torchvision.models.get_model(architecture, weights=None, num_classes=num_classes)
    _set_batchnorm_momentum(backbone, BATCHNORM_MOMENTUM)
    if weights_path is not None:
        _load_weights(backbone, Path(weights_path))
    classifier = InspectionClassifier(backbone, spec)
    _check_input_size(classifier, architecture, spec)
    return classifier


def _check_input_size(classifier: InspectionClassifier, architecture: str, spec: InputSpec) -> None:
    """Some architectures take one size only (ViT: 224) or need a minimum: find out before training."""
    probe = torch.zeros((1, spec.size_px, spec.size_px, spec.channels), dtype=torch.uint8)
    classifier.eval()
    try:
        with torch.no_grad():
            classifier(probe)
    except (AssertionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{architecture} cannot take {spec.size_px} px input ({first_line(exc)}). "
                          "Pass an --image-size it accepts (ViT and Swin models: 224), or choose another --model.") from None
    finally:
        classifier.train()


def _set_batchnorm_momentum(model: nn.Module, momentum: float) -> None:
    """MobileNetV3 and EfficientNet ship BatchNorm momentum 0.01 (tuned for ImageNet's ~1M steps).
    A line dataset trains for a few hundred steps: with 0.01 the running statistics are still near
    their initial values at the end, and eval-mode predictions collapse to one class."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def _load_weights(backbone: nn.Module, path: Path) -> list[str]:
    """Load a local state dict (safetensors, or a tensors-only torch file); skip shape-mismatched keys.

    A pretrained ImageNet file has a 1000-class head: those keys are skipped and the head trains
    from scratch. Returns the skipped keys.
    """
    check_weights_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"weights file {path} cannot be read as a state dict ({first_line(exc)}). Pass a safetensors or torch state dict.") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(f"weights file {path} shares no tensors with this architecture. Check --model matches the file.")
    backbone.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
