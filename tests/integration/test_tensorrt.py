"""Real TensorRT engines: built, gated, sealed, run, and refused when they do not fit. Skips without TensorRT.

Never run by us so far: no machine we have can install TensorRT (README, "GPU path")."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorrt")
torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from inspection.backends import open_backend  # noqa: E402
from inspection.bundle import load_bundle, write_meta  # noqa: E402
from inspection.errors import BackendUnavailableError, BundleIntegrityError  # noqa: E402
from training.tensorrt_export import export_tensorrt  # noqa: E402


def test_fp16_engine_is_built_gated_sealed_and_matches_onnxruntime(tiny_bundle_copy):
    bundle_path, data = tiny_bundle_copy
    record = export_tensorrt(bundle_path, "fp16", data, max_batch=8, allow_parity_failure=True, progress=False)
    bundle = load_bundle(bundle_path)
    assert bundle.meta.engines and bundle.meta.engines[0].precision == "fp16"
    assert (bundle_path / record["engine"]["file"]).is_file()
    assert "tensorrt_fp16" in bundle.meta.parity
    assert (bundle_path.parent / "bundle.trt-timing.cache").is_file()
    frames = np.random.default_rng(0).integers(0, 256, (11, 64, 64, 3), dtype=np.uint8)
    reference = open_backend("onnxruntime", bundle).infer(frames)
    backend = open_backend("tensorrt", bundle, device="cuda", precision="fp16")
    try:
        probabilities = backend.infer(frames)
        np.testing.assert_array_equal(backend.infer_images(list(frames)), probabilities)
    finally:
        backend.close()
    assert np.abs(probabilities - reference).max() < 1e-2


def test_an_engine_for_another_tensorrt_version_is_refused(tiny_bundle_copy):
    bundle_path, data = tiny_bundle_copy
    export_tensorrt(bundle_path, "fp16", data, max_batch=4, allow_parity_failure=True, progress=False)
    meta = json.loads((bundle_path / "bundle.json").read_text())
    meta["engines"][0]["tensorrt_version"] = "0.0.1"
    bundle = load_bundle(bundle_path)
    write_meta(bundle_path, bundle.meta.model_validate(meta))
    with pytest.raises(BundleIntegrityError):  # an edited bundle.json fails the manifest first
        load_bundle(bundle_path)
    edited = bundle.__class__(bundle.path, bundle.meta.model_validate(meta), bundle.bundle_hash)
    with pytest.raises(BackendUnavailableError, match="--tensorrt --precision fp16"):
        open_backend("tensorrt", edited, device="cuda", precision="fp16")
