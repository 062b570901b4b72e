"""Export a trained classifier to ONNX and gate it on parity with torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from inspection.errors import ExportError
from inspection.backends.torch_model import InspectionClassifier, WithSoftmax

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
MAX_ABS_PROBABILITY_DIFF = 1e-4
MIN_TOP1_AGREEMENT = 0.999


def export_onnx(classifier: InspectionClassifier, size_px: int, channels: int, path: Path, orientation_average: bool = False) -> None:
    """uint8 NHWC images -> probabilities (averaged over 8 orientations if asked), dynamic batch, opset 17."""
    model = WithSoftmax(classifier, orientation_average).eval().cpu()
    example = torch.zeros((2, size_px, size_px, channels), dtype=torch.uint8)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript;
        # it still exports every torchvision classifier exactly, and the parity gate checks it.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))


def parity_record(torch_probabilities: np.ndarray, onnx_probabilities: np.ndarray) -> dict:
    """Compare backends on the same images; `passed` says whether the export gate holds."""
    if torch_probabilities.shape != onnx_probabilities.shape or len(torch_probabilities) == 0:
        raise ExportError(
            f"parity check got shapes {torch_probabilities.shape} and {onnx_probabilities.shape}; "
            "it needs the same non-empty set of images from both backends."
        )
    max_diff = float(np.abs(torch_probabilities - onnx_probabilities).max())
    agreement = float((torch_probabilities.argmax(1) == onnx_probabilities.argmax(1)).mean())
    return {
        "reference": "torch (cpu, fp32)",
        "candidate": "onnxruntime (cpu, fp32)",
        "images": int(len(torch_probabilities)),
        "max_abs_probability_diff": max_diff,
        "top1_agreement": agreement,
        "max_abs_probability_diff_allowed": MAX_ABS_PROBABILITY_DIFF,
        "min_top1_agreement": MIN_TOP1_AGREEMENT,
        "passed": max_diff <= MAX_ABS_PROBABILITY_DIFF and agreement >= MIN_TOP1_AGREEMENT,
    }


def require_parity(record: dict) -> None:
    if not record["passed"]:
        raise ExportError(
            f"ONNX export failed its parity gate: max probability difference {record['max_abs_probability_diff']:.2e} "
            f"(allowed {MAX_ABS_PROBABILITY_DIFF:.0e}), top-1 agreement {record['top1_agreement']:.4f} "
            f"(needed {MIN_TOP1_AGREEMENT}). Check the model for export-unsafe layers; nothing was written."
        )
