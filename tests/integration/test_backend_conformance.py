"""Every backend, the same bundle, the same frames: probabilities agree within the bundle's tolerance."""

import numpy as np
import pytest

from inspection.backends import BackendKind, open_backend
from inspection.bundle import load_bundle
from inspection.errors import BackendError, BackendUnavailableError, ConfigError
from inspection.preprocess import prepare, to_model_input


@pytest.fixture(scope="module")
def frames(tiny_bundle):
    spec = load_bundle(tiny_bundle).meta.input
    rng = np.random.default_rng(0)
    return to_model_input(np.stack([prepare(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8), spec) for _ in range(5)]), spec)


@pytest.mark.parametrize("kind", list(BackendKind))
def test_backend_matches_onnxruntime(tiny_bundle, frames, kind):
    bundle = load_bundle(tiny_bundle)
    reference = open_backend("onnxruntime", bundle).infer(frames)
    if kind is BackendKind.TENSORRT:
        pytest.skip("TensorRT engines are per GPU and built by `inspection export --tensorrt` (tests/integration/test_tensorrt.py)")
    backend = open_backend(kind.value, bundle)
    try:
        probabilities = backend.infer(frames)
        unstacked = backend.infer_images(list(frames))  # the station's prepared images, as they lie
    finally:
        backend.close()
    np.testing.assert_array_equal(unstacked, probabilities)
    assert probabilities.shape == (5, len(bundle.meta.class_names)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(probabilities - reference).max() <= bundle.meta.backend_tolerance


def test_unknown_backend_lists_the_valid_ones(tiny_bundle):
    with pytest.raises(ConfigError, match="onnxruntime, torch"):
        open_backend("tensorrtt", load_bundle(tiny_bundle))


def test_fp16_on_the_cpu_is_an_error_not_a_silent_fallback(tiny_bundle):
    with pytest.raises(BackendUnavailableError, match="fp16 needs device 'cuda'"):
        open_backend("torch", load_bundle(tiny_bundle), precision="fp16")


def test_cuda_without_a_gpu_is_an_error(tiny_bundle):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        open_backend("torch", load_bundle(tiny_bundle), device="cuda")


def test_onnxruntime_cuda_without_the_provider_is_an_error(tiny_bundle):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has CUDA here")
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        open_backend("onnxruntime", load_bundle(tiny_bundle), device="cuda")


def test_torch_backend_refuses_an_imported_bundle(tmp_path):
    import subprocess
    import sys
    import warnings

    import torch
    import torchvision

    model = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(tmp_path / "m.onnx"), opset_version=17, dynamo=False)
    result = subprocess.run([sys.executable, "-m", "inspection.cli", "bundle", "import", str(tmp_path / "m.onnx"),
                             "--out", str(tmp_path / "b"), "--classes", "ok,bad", "--good", "ok"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with pytest.raises(BackendError, match="Use the onnxruntime backend"):
        open_backend("torch", load_bundle(tmp_path / "b"))


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_default_bundle_answers_the_same_for_every_orientation(tiny_bundle, frames, kind):
    bundle = load_bundle(tiny_bundle)
    assert bundle.meta.orientation_average  # the default recipe serves the mean over the 8 orientations
    backend = open_backend(kind, bundle)
    try:
        upright = backend.infer(frames)
        turned = backend.infer(np.ascontiguousarray(np.rot90(frames, 1, axes=(1, 2))))
        mirrored = backend.infer(np.ascontiguousarray(frames[:, :, ::-1]))
    finally:
        backend.close()
    assert np.abs(turned - upright).max() <= 1e-5 and np.abs(mirrored - upright).max() <= 1e-5
