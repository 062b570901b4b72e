"""int8 by explicit quantization: a Q/DQ ONNX from calibration images, gated on parity with fp32.

ONNX Runtime's static quantization in QDQ format (not TensorRT's deprecated implicit calibrators):
the same file runs on ONNX Runtime's CPU int8 kernels and is what TensorRT builds int8 engines from.
Weights are quantized per output channel (per-tensor loses accuracy on depthwise convolutions);
activations are uint8 with MinMax ranges from the calibration images.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from inspection.errors import ExportError

METHOD = "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, MinMax calibration"
MIN_TOP1_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.005
MIN_CALIBRATION_IMAGES = 16


def quantize_qdq(fp32_onnx: Path, out: Path, calibration_images: np.ndarray) -> None:
    """Write the Q/DQ model of `fp32_onnx` to `out`, calibrated on uint8 NHWC model inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_images) < MIN_CALIBRATION_IMAGES:
        raise ExportError(
            f"int8 calibration got {len(calibration_images)} images; it needs at least {MIN_CALIBRATION_IMAGES}. "
            "Pass --calib with a dataset that has more training images."
        )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"images": calibration_images[i : i + 1]} for i in range(len(calibration_images))])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantizer warns about its own pre-processing advice we follow
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(prepared))
        quantize_static(str(prepared), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def int8_parity_record(fp32_probabilities: np.ndarray, int8_probabilities: np.ndarray, labels: np.ndarray, split: str) -> dict:
    """Top-1 agreement with fp32 and the accuracy drop on labelled held-out images; `passed` is the gate."""
    if fp32_probabilities.shape != int8_probabilities.shape or len(labels) != len(fp32_probabilities) or not len(labels):
        raise ExportError("int8 parity needs the same non-empty set of labelled images from both models.")
    agreement = float((fp32_probabilities.argmax(1) == int8_probabilities.argmax(1)).mean())
    fp32_accuracy = float((fp32_probabilities.argmax(1) == labels).mean())
    int8_accuracy = float((int8_probabilities.argmax(1) == labels).mean())
    return {
        "reference": "onnxruntime fp32",
        "candidate": "onnxruntime int8 (QDQ)",
        "split": split,
        "images": int(len(labels)),
        "top1_agreement": agreement,
        "min_top1_agreement": MIN_TOP1_AGREEMENT,
        "fp32_accuracy": fp32_accuracy,
        "int8_accuracy": int8_accuracy,
        "accuracy_drop": fp32_accuracy - int8_accuracy,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "max_abs_probability_diff": float(np.abs(fp32_probabilities - int8_probabilities).max()),
        "passed": agreement >= MIN_TOP1_AGREEMENT and fp32_accuracy - int8_accuracy <= MAX_ACCURACY_DROP,
    }


def require_int8_parity(record: dict, allow_failure: bool) -> None:
    if record["passed"] or allow_failure:
        return
    raise ExportError(
        f"int8 failed its parity gate on {record['images']} {record['split']} images: top-1 agreement "
        f"{record['top1_agreement']:.4f} (needed {MIN_TOP1_AGREEMENT}), accuracy drop {record['accuracy_drop']:.4f} "
        f"(allowed {MAX_ACCURACY_DROP}). Use fp32, calibrate on more representative images, or pass "
        "--allow-parity-failure to keep it anyway (recorded in bundle.json; `auto` never picks it)."
    )
