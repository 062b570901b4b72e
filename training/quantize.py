"""int8 by explicit quantization: a Q/DQ ONNX from calibration images (gated by precision_gate.py).

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
MIN_CALIBRATION_IMAGES = 16


def quantize_qdq(fp32_onnx: Path, out: Path, calibration_images: np.ndarray, per_channel: bool = True,
                 op_types_to_quantize: list[str] | None = None) -> None:
    """Write the Q/DQ model of `fp32_onnx` to `out`, calibrated on uint8 NHWC model inputs.
    (The options exist for benchmarks/int8_cpu.py, which compares quantization variants.)"""
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
        quantize_static(str(prepared), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=op_types_to_quantize)
