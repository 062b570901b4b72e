"""The int8 quantizer's graph preparation: the input normalisation's constants widened, same results."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from training.quantize import widen_normalisation_constants


def probabilities(model: onnx.ModelProto, frames: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: frames})[0]


def normalisation_shapes(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    return [tuple(constants[node.input[1]].dims) for node in model.graph.node
            if node.op_type in ("Sub", "Div") and node.input[1] in constants][:2]


@pytest.fixture(params=["orientation average", "one view"])
def exported_model(request, tiny_bundle, tmp_path):
    """The tiny bundle's model.onnx (the default recipe: the mean over 8 orientations), and a one-view export."""
    if request.param == "orientation average":
        return tiny_bundle / "model.onnx"
    from inspection.backends.torch_model import InspectionClassifier
    from inspection.input_spec import default_input_spec
    from training.export_onnx import export_onnx

    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    export_onnx(InspectionClassifier(backbone, default_input_spec(32, 3)).eval(), 32, 3, tmp_path / "model.onnx")
    return tmp_path / "model.onnx"


def test_our_exported_model_gets_wide_constants_and_the_same_probabilities(exported_model):
    original = onnx.load(str(exported_model))
    width = original.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    assert normalisation_shapes(original) == [(1, 3, 1, 1)] * 2
    widened = widen_normalisation_constants(onnx.load(str(exported_model)))
    assert normalisation_shapes(widened) == [(1, 3, 1, width)] * 2
    frames = np.random.default_rng(0).integers(0, 256, (4, width, width, 3), dtype=np.uint8)
    assert np.array_equal(probabilities(original, frames), probabilities(widened, frames))


def test_a_model_without_our_normalisation_chain_is_left_as_is():
    # An imported model: float NCHW input normalised by Sub and Div, with no uint8 NHWC transpose first.
    mean = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "mean")
    std = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.25, np.float32), "std")
    graph = helper.make_graph(
        [helper.make_node("Sub", ["images", "mean"], ["centred"]), helper.make_node("Div", ["centred", "std"], ["out"])],
        "imported", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])], [mean, std])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert widen_normalisation_constants(model).SerializeToString() == before
