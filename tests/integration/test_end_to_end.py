"""Tiny synthetic set -> one epoch -> ONNX export with parity -> sealed bundle -> verify -> eval JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EVAL_KEYS = {"n", "accuracy", "escape_rate", "escape_rate_upper95", "false_reject_rate", "per_class", "confusion"}


def inspection(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data, bundle = root / "data", root / "bundle"
    synth = inspection("data", "synth", str(data), "--count", "12", "--size", "64", "--seed", "3", "--json")
    assert synth.returncode == 0, synth.stderr
    train = inspection("train", str(data), "--out", str(bundle), "--epochs", "1", "--image-size", "64", "--batch-size", "16", "--json")
    assert train.returncode == 0, train.stderr
    return data, bundle, json.loads(train.stdout)


@pytest.mark.slow
def test_training_writes_a_complete_bundle(trained):
    _, bundle, summary = trained
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {"bundle.json", "model.onnx", "weights.safetensors", "dataset_manifest.jsonl", "manifest.sha256",
            "report/report.md", "report/report.html", "report/confusion.png", "report/pr_roc.png", "report/worst.png"} <= names
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["class_names"][0] == "broken" and meta["good_classes"] == ["good"]
    assert meta["parity"]["onnxruntime_vs_torch"]["passed"] is True
    assert meta["parity"]["onnxruntime_vs_torch"]["max_abs_probability_diff"] <= 1e-4
    assert meta["dataset"]["dataset_hash"] == summary["dataset"]["dataset_hash"]
    assert 0.0 <= meta["policy"]["pass_threshold"] <= meta["policy"]["reject_threshold"]
    assert meta["versions"]["torch"].startswith("2.14.1")
    assert meta["input"]["item_crop_fraction"] == 0.6 and meta["recipe"]["good_vs_defect_weight"] == 1.0 and meta["recipe"]["ema_decay"] > 0  # the default recipe
    assert not list(bundle.parent.glob(".bundle.staging*"))


@pytest.mark.slow
def test_onnx_model_is_uint8_nhwc_with_dynamic_batch(trained):
    import onnx

    model = onnx.load(str(trained[1] / "model.onnx"))
    tensor = model.graph.input[0].type.tensor_type
    assert tensor.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
    assert dims == ["batch", 64, 64, 3]
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17


@pytest.mark.slow
def test_verify_then_eval_json(trained):
    data, bundle, _ = trained
    verify = inspection("bundle", "verify", str(bundle))
    assert verify.returncode == 0 and "intact" in verify.stdout
    result = inspection("eval", str(bundle), str(data), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert EVAL_KEYS <= set(report)
    from training.dataset_index import index_dataset

    assert report["n"] == len(index_dataset(data, progress=False).split("test")) > 0
    assert report["excluded_seen_in_training"] == 0
    assert set(report["per_class"]) == set(report["confusion"]["labels"])


@pytest.mark.slow
def test_eval_all_covers_every_image(trained):
    data, bundle, _ = trained
    report = json.loads(inspection("eval", str(bundle), str(data), "--split", "all", "--json").stdout)
    assert report["n"] == 7 * 12


@pytest.mark.slow
def test_tampered_bundle_fails_verify_and_eval(trained, tmp_path):
    import shutil

    _, bundle, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    verify = inspection("bundle", "verify", str(copy))
    assert verify.returncode == 1 and "model.onnx" in verify.stderr and len(verify.stderr.strip().splitlines()) == 1
    result = inspection("eval", str(copy), str(trained[0]))
    assert result.returncode == 1 and "model.onnx" in result.stderr


@pytest.mark.slow
def test_training_refuses_to_overwrite_a_bundle(trained):
    data, bundle, _ = trained
    before = (bundle / "manifest.sha256").read_bytes()
    result = inspection("train", str(data), "--out", str(bundle), "--epochs", "1")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (bundle / "manifest.sha256").read_bytes() == before
