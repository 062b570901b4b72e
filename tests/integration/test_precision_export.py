"""`inspection export`: the int8 Q/DQ model (gated, resealed), and TensorRT refusals where it is absent."""

import json
import subprocess
import sys

import pytest

from inspection.backends import open_backend
from inspection.bundle import load_bundle
from inspection.errors import BackendUnavailableError
from inspection.file_manifest import MANIFEST_NAME
from training.quantize import QUANTIZATION_SCOPES
from training.recipe import TrainRecipe


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_int8_export_is_gated_then_kept_only_when_overridden(tiny_bundle_copy):
    bundle, data = tiny_bundle_copy
    manifest_before = (bundle / MANIFEST_NAME).read_bytes()
    gated = run("export", str(bundle), "--precision", "int8", "--calib", str(data), "--json")
    meta = json.loads((bundle / "bundle.json").read_text())
    if gated.returncode == 0:
        # A confident model can pass the gate: then the record says so.
        assert meta["int8"]["parity"]["passed"] and not meta["int8"]["parity_overridden"]
    else:
        # The one-epoch model's probabilities are close, so int8 flips its top-1: refused, nothing written.
        assert "failed its parity gate" in one_line_error(gated)
        assert (bundle / MANIFEST_NAME).read_bytes() == manifest_before and meta["int8"] is None
        kept = run("export", str(bundle), "--precision", "int8", "--calib", str(data), "--allow-parity-failure", "--json")
        assert kept.returncode == 0, kept.stderr
        meta = json.loads((bundle / "bundle.json").read_text())
        assert meta["int8"]["parity_overridden"] and not meta["int8"]["parity"]["passed"]
    # Scopes are tried from fastest to most faithful, and the search stops at the first that passes.
    tried = meta["int8"]["scopes_tried"]
    assert 1 <= len(tried) <= len(QUANTIZATION_SCOPES) and tried[0]["scope"] == QUANTIZATION_SCOPES[0].name
    assert [t["passed"] for t in tried[:-1]] == [False] * (len(tried) - 1)
    assert len(tried) == len(QUANTIZATION_SCOPES) or tried[-1]["passed"]
    assert meta["int8"]["method"].endswith(max(tried, key=lambda t: (t["passed"], t["top1_agreement"]))["scope"])
    record = meta["int8"]["parity"]
    assert record["reference"] == "onnxruntime fp32" and record["split"] in ("val", "test") and record["images"] > 0
    assert run("bundle", "verify", str(bundle)).returncode == 0
    assert "model.int8.onnx" in (bundle / MANIFEST_NAME).read_text()
    loaded = load_bundle(bundle)
    int8 = open_backend("onnxruntime", loaded, precision="int8")
    fp32 = open_backend("onnxruntime", loaded)
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert "int8" in int8.description
    # The backend loads the int8 file through the GEMM routing (tests/unit/inspection/test_int8_conv_kernels.py);
    # the tiny mobilenet has no convolution wide enough to move.
    assert "0 wide convolutions on the int8 GEMM" in int8.description
    assert int8.infer(frames).shape == fp32.infer(frames).shape == (3, len(loaded.meta.class_names))


def test_int8_needs_calibration_data(tiny_bundle_copy):
    bundle, _ = tiny_bundle_copy
    assert "--calib DATA" in one_line_error(run("export", str(bundle), "--precision", "int8"))


def test_int8_backend_without_an_int8_model_says_how_to_make_one(tiny_bundle):
    with pytest.raises(BackendUnavailableError, match="inspection export .* --precision int8 --calib DATA"):
        open_backend("onnxruntime", load_bundle(tiny_bundle), precision="int8")


def test_tensorrt_export_without_tensorrt_is_a_clear_error(tiny_bundle_copy):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here: tests/integration/test_tensorrt.py builds real engines")
    except ImportError:
        pass
    bundle, data = tiny_bundle_copy
    message = one_line_error(run("export", str(bundle), "--tensorrt", "--precision", "fp16", "--calib", str(data)))
    assert "TensorRT is not installed" in message
    assert json.loads((bundle / "bundle.json").read_text())["engines"] == []


def test_bench_writes_a_result_naming_the_machine(tmp_path):
    out = tmp_path / "bench.json"
    result = run("bench", "--models", "mobilenet_v3_small", "--backends", "onnxruntime", "--precisions", "fp32",
                 "--batch-sizes", "1", "--budget-s", "1", "--image-size", "64", "--station-frames", "40", "--no-training",
                 "--cache", str(tmp_path / "cache"), "--json", str(out))  # the spelling
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpu"] and saved["backends"][0]["images_per_s"] > 0
    assert saved["station"][0]["frames"] == 40 and 0 < saved["station"][0]["throughput_vs_raw"]
    assert out.with_suffix(".md").is_file() and out.with_suffix(".png").is_file()
    assert not (tmp_path / "bench.partial.json").exists()  # the rows so far, kept only while the bench runs
    # The station row prepares frames as a default trained bundle does: cropped around the item, shrunk the same way.
    (bundle_dir,) = [p for p in (tmp_path / "cache").iterdir() if (p / "bundle.json").is_file()]
    spec = load_bundle(bundle_dir).meta.input
    assert (spec.item_crop_fraction, spec.shrink) == (TrainRecipe().item_crop_fraction, TrainRecipe().shrink)
