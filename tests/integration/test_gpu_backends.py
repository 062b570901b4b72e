"""The torch CUDA backend (CUDA graphs, pinned double-buffered uploads, fp16) against ONNX Runtime. GPU only."""

import numpy as np
import pytest

from inspection.backends import open_backend
from inspection.bundle import load_bundle
from inspection.preprocess import prepare, to_model_input

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _frames(bundle, count: int) -> np.ndarray:
    spec = bundle.meta.input
    rng = np.random.default_rng(1)
    return to_model_input(np.stack([prepare(rng.integers(0, 256, (80, 90, 3), dtype=np.uint8), spec) for _ in range(count)]), spec)


@pytest.mark.parametrize("rows", [1, 3, 8, 21])  # one graph, a padded graph, the largest graph, chunks of it
def test_cuda_graphs_fp32_match_onnxruntime(tiny_bundle, rows):
    bundle = load_bundle(tiny_bundle)
    frames = _frames(bundle, rows)
    reference = open_backend("onnxruntime", bundle).infer(frames)
    backend = open_backend("torch", bundle, device="cuda", max_batch=8)
    try:
        assert "CUDA graphs for batch 1,2,4,8" in backend.description and "cuDNN autotuned" in backend.description
        probabilities = backend.infer(frames)
        assert backend.replay_images_per_s(min(rows, 8), 0.1) > 0
    finally:
        backend.close()
    assert probabilities.shape == reference.shape
    assert np.abs(probabilities - reference).max() <= bundle.meta.backend_tolerance


def test_batches_staged_by_the_copy_threads_give_the_same_probabilities(tiny_bundle, monkeypatch):
    from inspection.backends import staging

    bundle = load_bundle(tiny_bundle)
    frames = _frames(bundle, 21)
    monkeypatch.setattr(staging, "staging_copy_threads", lambda cores=None: 4)  # whatever this host's cores
    backend = open_backend("torch", bundle, device="cuda", max_batch=8)
    try:
        one_thread = backend.infer(frames)
        unstacked = backend.infer_images(list(frames))
        monkeypatch.setattr(staging, "PARALLEL_COPY_MIN_BYTES", 0)  # the tiny frames take the large-batch path
        np.testing.assert_array_equal(backend.infer(frames), one_thread)
        np.testing.assert_array_equal(backend.infer_images(list(frames)), one_thread)
    finally:
        backend.close()
    np.testing.assert_array_equal(unstacked, one_thread)


def test_fp16_agrees_with_fp32_and_the_stream_keeps_order(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    frames = _frames(bundle, 32)
    reference = open_backend("onnxruntime", bundle).infer(frames)
    backend = open_backend("torch", bundle, device="cuda", precision="fp16", max_batch=8)
    try:
        streamed = np.concatenate(list(backend.infer_stream(frames[i : i + 8] for i in range(0, 32, 8))))
        direct = backend.infer(frames)
    finally:
        backend.close()
    np.testing.assert_array_equal(streamed, direct)
    assert np.abs(direct - reference).max() < 1e-2
    assert (direct.argmax(1) == reference.argmax(1)).mean() >= 0.95


def test_eager_cuda_matches_graphs(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    frames = _frames(bundle, 5)
    graphs = open_backend("torch", bundle, device="cuda", max_batch=8)
    eager = open_backend("torch", bundle, device="cuda", cuda_graphs=False)
    try:
        assert "CUDA graphs" not in eager.description
        np.testing.assert_allclose(graphs.infer(frames), eager.infer(frames), atol=1e-5)
    finally:
        graphs.close()
        eager.close()
