"""An ONNX classifier trained elsewhere (float NCHW in, logits out, like timm) runs from a bundle."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torchvision

from inspection.backends import open_backend
from inspection.bundle import OutputKind, load_bundle
from inspection.preprocess import preprocess


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def external_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("ext") / "external.onnx"
    torch.manual_seed(0)
    model = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["x"], output_names=["logits"],
                          opset_version=17, dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    return model, path


def test_import_detects_logits_and_matches_the_source_model(external_model, tmp_path):
    model, path = external_model
    result = run("bundle", "import", str(path), "--out", str(tmp_path / "b"), "--classes", "ok,chip,spot", "--good", "ok")
    assert result.returncode == 0, result.stderr
    bundle = load_bundle(tmp_path / "b")
    assert bundle.meta.output_kind == OutputKind.LOGITS and bundle.meta.input.size_px == 64
    image = np.random.default_rng(0).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    batch = preprocess(image, bundle.meta.input)[None]
    backend = open_backend("onnxruntime", bundle)
    probs = backend.infer(batch)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(batch)), 1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["source"].startswith("imported")


def test_import_refuses_a_class_count_mismatch(external_model, tmp_path):
    result = run("bundle", "import", str(external_model[1]), "--out", str(tmp_path / "b"), "--classes", "ok,bad", "--good", "ok")
    assert result.returncode == 2 and "outputs 3 scores" in result.stderr
    assert not (tmp_path / "b").exists()


def test_import_refuses_a_wrong_size(external_model, tmp_path):
    result = run("bundle", "import", str(external_model[1]), "--out", str(tmp_path / "b"), "--classes", "a,b,c", "--good", "a", "--size", "224")
    assert result.returncode == 2 and "--size 64" in result.stderr


def test_import_refuses_a_file_that_is_not_onnx(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"garbage")
    result = run("bundle", "import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "b"), "--classes", "a,b", "--good", "a")
    assert result.returncode == 2 and "not a readable ONNX model" in result.stderr


def test_import_with_an_item_crop_records_it_and_rejects_a_bad_share(external_model, tmp_path):
    path = str(external_model[1])
    plain = load_bundle_after_import(path, tmp_path / "none").meta.input
    assert plain.item_crop_fraction is None and plain.shrink == "area"
    result = run("bundle", "import", path, "--out", str(tmp_path / "crop"), "--classes", "a,b,c", "--good", "a", "--item-crop", "0.7",
                 "--shrink", "box_then_linear")
    assert result.returncode == 0, result.stderr
    cropped = load_bundle(tmp_path / "crop").meta.input
    assert cropped.item_crop_fraction == 0.7 and cropped.shrink == "box_then_linear"
    result = run("bundle", "import", path, "--out", str(tmp_path / "bad"), "--classes", "a,b,c", "--good", "a", "--item-crop", "2")
    assert result.returncode == 2 and "item_crop_fraction" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def load_bundle_after_import(model_path: str, out):
    result = run("bundle", "import", model_path, "--out", str(out), "--classes", "a,b,c", "--good", "a")
    assert result.returncode == 0, result.stderr
    return load_bundle(out)


def test_a_model_exported_for_batch_1_runs_in_batches_and_quantizes_with_its_own_input_name(external_model, tmp_path):
    """Exporters often fix the batch at 1 and name the input as they like ("x" here): the station, eval and
    the int8 export must all work with such a file."""
    from helpers.images import write_png

    model, _ = external_model
    fixed = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(fixed), input_names=["x"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    bundle = load_bundle_after_import(str(fixed), tmp_path / "b")
    rng = np.random.default_rng(1)
    batch = np.stack([preprocess(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), bundle.meta.input) for _ in range(5)])
    backend = open_backend("onnxruntime", bundle)
    together = backend.infer(batch)
    one_by_one = np.concatenate([backend.infer(batch[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    for label in ("a", "b", "c"):
        for i in range(12):
            write_png(tmp_path / "calib" / label / f"{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    result = run("export", str(tmp_path / "b"), "--precision", "int8", "--calib", str(tmp_path / "calib"), "--allow-parity-failure")
    assert result.returncode == 0, result.stderr
    assert load_bundle(tmp_path / "b").int8_onnx_path is not None
