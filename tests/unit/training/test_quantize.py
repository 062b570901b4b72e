"""The int8 quantizer's graph preparation: the input normalisation's constants widened, same results."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from training.quantize import widen_normalisation_constants


def probabilities(model: onnx.ModelProto, frames: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: frames})[0]


def normalisation_shapes(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    return [tuple(constants[node.input[1]].dims) for node in model.graph.node
            if node.op_type in ("Sub", "Div") and node.input[1] in constants][:2]


def test_our_exported_model_gets_wide_constants_and_the_same_probabilities(tiny_bundle):
    original = onnx.load(str(tiny_bundle / "model.onnx"))
    width = original.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    assert normalisation_shapes(original) == [(1, 3, 1, 1)] * 2
    widened = widen_normalisation_constants(onnx.load(str(tiny_bundle / "model.onnx")))
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
