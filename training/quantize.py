"""int8 by explicit quantization: a Q/DQ ONNX from calibration images (gated by precision_gate.py).

ONNX Runtime's static quantization in QDQ format (not TensorRT's deprecated implicit calibrators):
the same file runs on ONNX Runtime's CPU int8 kernels and is what TensorRT builds int8 engines from.
Weights are quantized per output channel (per-tensor loses accuracy on depthwise convolutions);
activations are uint8 with MinMax ranges from the calibration images.

Before quantizing, the input normalisation's per-channel constants are widened along the image
width (same values, same arithmetic, so the same results). ONNX Runtime runs int8 convolutions in
NHWC and moves the normalisation there, where a (1, C, 1, 1) constant becomes a 3-element
broadcast, its slowest case: 0.8 of 5.3 ms per resnet18 image at 224 px, against 0.1 ms widened.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from inspection.errors import ExportError

METHOD = "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, MinMax calibration"
MIN_CALIBRATION_IMAGES = 16


@dataclass(frozen=True)
class QuantizationScope:
    """Which operators get Q/DQ pairs; the rest stay float."""

    name: str
    op_types: tuple[str, ...] | None  # None: every operator ONNX Runtime can quantize


# `inspection export --precision int8` tries these in order and keeps the first that passes its gate.
# Quantizing everything is fastest; each quantized residual Add, ReLU or pooling output rounds once
# more, which flips near-tied images: on a resnet18 of one synthetic product (val accuracy 0.78)
# top-1 agreement was 0.978 with every operator and 0.997 with convolutions and Gemm only.
QUANTIZATION_SCOPES = (
    QuantizationScope("every operator", None),
    QuantizationScope("convolutions and fully connected layers only", ("Conv", "Gemm")),
)


def quantize_qdq(fp32_onnx: Path, out: Path, calibration_images: np.ndarray, per_channel: bool = True,
                 op_types_to_quantize: tuple[str, ...] | None = None) -> None:
    """Write the Q/DQ model of `fp32_onnx` to `out`, calibrated on model inputs (the tensors it takes).
    (The options exist for benchmarks/int8_cpu.py, which compares quantization variants.)"""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_images) < MIN_CALIBRATION_IMAGES:
        raise ExportError(
            f"int8 calibration got {len(calibration_images)} images; it needs at least {MIN_CALIBRATION_IMAGES}. "
            "Pass --calib with a dataset that has more training images."
        )

    model = onnx.load(str(fp32_onnx))
    initializers = {tensor.name for tensor in model.graph.initializer}  # listed as inputs in old (IR < 4) files
    # "images" in our bundles; an imported model keeps its own name.
    input_name = next(i.name for i in model.graph.input if i.name not in initializers)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: calibration_images[i : i + 1]} for i in range(len(calibration_images))])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantizer warns about its own pre-processing advice we follow
        widened, prepared = Path(tmp) / "widened.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(widen_normalisation_constants(model), str(widened))
        quant_pre_process(str(widened), str(prepared))
        quantize_static(str(prepared), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types_to_quantize) if op_types_to_quantize else None)


# The ops of our models' input normalisation after its NHWC -> NCHW Transpose
# (inspection/backends/torch_model.py), in graph order.
_NORMALISATION_OPS = ("Cast", "Sub", "Div")


def widen_normalisation_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the (1, C, 1, 1) constants of its input normalisation broadcast to (1, C, 1, W).

    Only the chain our exporter writes is touched: the uint8 NHWC input (or its 8 orientations, which
    keep its size), transposed to NCHW, cast, then Sub and Div by per-channel constants. Any other
    model (an imported one) comes back as is."""
    graph = model.graph
    if len(graph.input) != 1:
        return model
    tensor_type = graph.input[0].type.tensor_type
    dims = tensor_type.shape.dim
    if tensor_type.elem_type != onnx.TensorProto.UINT8 or len(dims) != 4 or not dims[2].HasField("dim_value"):
        return model
    width = dims[2].dim_value  # NHWC
    constants = {tensor.name: tensor for tensor in graph.initializer}
    to_nchw = next((node for node in graph.node if node.op_type == "Transpose" and _perm(node) == [0, 3, 1, 2]), None)
    if to_nchw is None:
        return model
    tensor_name = to_nchw.output[0]
    for node in graph.node:
        if tensor_name not in node.input:
            continue
        if node.op_type not in _NORMALISATION_OPS or node.input[0] != tensor_name:
            break
        if node.op_type in ("Sub", "Div") and node.input[1] in constants:
            constant = constants[node.input[1]]
            values = numpy_helper.to_array(constant)
            if values.ndim == 4 and values.shape[0] == values.shape[2] == values.shape[3] == 1:
                wide = np.ascontiguousarray(np.broadcast_to(values, values.shape[:3] + (width,)))
                constant.CopyFrom(numpy_helper.from_array(wide, constant.name))
        tensor_name = node.output[0]
    return model


def _perm(node: onnx.NodeProto) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
