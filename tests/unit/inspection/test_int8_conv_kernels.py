"""Routing wide int8 convolutions to ONNX Runtime's GEMM kernel: which layers, and the same results."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from inspection.backends.int8_conv_kernels import route_wide_convolutions_to_gemm
from training.quantize import quantize_qdq

torch = pytest.importorskip("torch")

WIDE_CHANNELS = 128  # a 3x3 convolution over 128 channels: kernel_dim 1,152


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory) -> onnx.ModelProto:
    """A small float CNN with narrow (kernel_dim 27, 72) and wide (1,152) convolutions, quantized as the export does."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, WIDE_CHANNELS, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(WIDE_CHANNELS, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 4),
    ).eval()
    folder = tmp_path_factory.mktemp("int8-kernels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation, as in training/export_onnx.py
        torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(folder / "fp32.onnx"), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    calibration = np.random.default_rng(1).normal(size=(16, 3, 16, 16)).astype(np.float32)
    quantize_qdq(folder / "fp32.onnx", folder / "int8.onnx", calibration)
    return onnx.load(str(folder / "int8.onnx"))


def conv_weight_zero_points(model: onnx.ModelProto) -> dict[int, np.ndarray]:
    """kernel_dim -> zero points of each convolution weight's DequantizeLinear."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants and constants[node.input[0]].ndim == 4:
            weights = constants[node.input[0]]
            found[int(np.prod(weights.shape[1:]))] = constants[node.input[2]]
    return found


def outputs(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_only_wide_convolutions_are_rewritten_and_results_are_bit_identical(qdq_model):
    routed = onnx.ModelProto()
    routed.CopyFrom(qdq_model)
    assert route_wide_convolutions_to_gemm(routed) == 1
    assert {k: set(zp.tolist()) for k, zp in conv_weight_zero_points(qdq_model).items()} == {27: {0}, 72: {0}, 1152: {0}}
    assert {k: set(zp.tolist()) for k, zp in conv_weight_zero_points(routed).items()} == {27: {0}, 72: {0}, 1152: {-1}}
    for batch in (1, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 16, 16)).astype(np.float32)
        assert np.array_equal(outputs(qdq_model, x), outputs(routed, x))


def test_every_convolution_can_be_routed_with_the_same_results(qdq_model):
    routed = onnx.ModelProto()
    routed.CopyFrom(qdq_model)
    assert route_wide_convolutions_to_gemm(routed, min_kernel_dim=1) == 3
    x = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    assert np.array_equal(outputs(qdq_model, x), outputs(routed, x))


def test_a_weight_holding_minus_128_is_left_alone(qdq_model):
    # A symmetric quantizer writes -127..127; -128 - 1 would wrap to 127 and change the layer.
    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    constants = {t.name: t for t in model.graph.initializer}
    wide = next(node for node in model.graph.node if node.op_type == "DequantizeLinear" and node.input[0] in constants
                and numpy_helper.to_array(constants[node.input[0]]).shape[1:] == (WIDE_CHANNELS, 3, 3))
    weights = numpy_helper.to_array(constants[wide.input[0]]).copy()
    weights.flat[0] = -128
    constants[wide.input[0]].CopyFrom(numpy_helper.from_array(weights, wide.input[0]))
    before = model.SerializeToString()
    assert route_wide_convolutions_to_gemm(model) == 0
    assert model.SerializeToString() == before
