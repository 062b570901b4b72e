"""The served model's mean over the item's 8 orientations: invariant by construction, the same in torch and ONNX."""

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from inspection.backends.torch_model import ORIENTATIONS, InspectionClassifier, WithSoftmax, dihedral_views
from inspection.input_spec import default_input_spec
from training.export_onnx import export_onnx


def test_dihedral_views_are_the_eight_orientations():
    image = torch.arange(3 * 3 * 1, dtype=torch.uint8).reshape(1, 3, 3, 1)  # no symmetry: every orientation differs
    views = dihedral_views(image)
    expected = [np.rot90(image[0].numpy(), k) for k in range(4)] + [np.rot90(image[0].numpy()[:, ::-1], k) for k in range(4)]
    got = {views[i].numpy().tobytes() for i in range(ORIENTATIONS)}
    assert len(got) == ORIENTATIONS and got == {np.ascontiguousarray(e).tobytes() for e in expected}


def test_views_are_stacked_orientation_by_orientation():
    images = torch.randint(0, 256, (3, 4, 4, 3), dtype=torch.uint8)
    views = dihedral_views(images)
    assert views.shape == (ORIENTATIONS * 3, 4, 4, 3)
    assert torch.equal(views[:3], images) and torch.equal(views[3:6], images.flip(1))


@pytest.mark.parametrize("average", [True, False])
def test_exported_average_is_invariant_and_matches_torch(tmp_path, average):
    torch.manual_seed(0)
    spec = default_input_spec(32, 3)
    # A small random CNN answers differently for each orientation; an untrained torchvision one says about 1/4 for all.
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.LazyLinear(4))
    classifier = InspectionClassifier(backbone, spec)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    classifier(torch.from_numpy(images))  # materialise the lazy layer
    classifier.eval()
    export_onnx(classifier, 32, 3, tmp_path / "model.onnx", orientation_average=average)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_probabilities = session.run(None, {"images": images})[0]
    with torch.no_grad():
        torch_probabilities = WithSoftmax(classifier, average)(torch.from_numpy(images)).numpy()
    turned = session.run(None, {"images": np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))})[0]
    assert onnx_probabilities.shape == (5, 4) and session.get_outputs()[0].shape[1] == 4  # the class count is static
    assert np.abs(onnx_probabilities - torch_probabilities).max() <= 1e-5
    np.testing.assert_allclose(onnx_probabilities.sum(axis=1), 1.0, atol=1e-5)
    # With the average, a quarter turn changes nothing but the order of a sum; without it, the model sees a new image.
    assert (np.abs(turned - onnx_probabilities).max() <= 1e-5) == average
