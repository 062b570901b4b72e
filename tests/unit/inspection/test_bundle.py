import json
import subprocess
import sys

import pytest

from inspection.bundle import META_NAME, BundleMeta, load_bundle, read_meta, seal_bundle, staging_dir_for, write_meta
from inspection.decision import DecisionPolicy
from inspection.errors import BundleError, BundleIntegrityError, OutputExistsError
from inspection.file_manifest import MANIFEST_NAME, verify_manifest
from inspection.input_spec import default_input_spec


def make_meta() -> BundleMeta:
    classes, good = ("good", "chipped"), ("good",)
    policy = DecisionPolicy(class_names=classes, good_classes=good, pass_threshold=0.2, reject_threshold=0.5)
    return BundleMeta(name="b", created_utc="2026-01-01T00:00:00Z", class_names=classes, good_classes=good,
                      input=default_input_spec(32, 3), policy=policy)


@pytest.fixture
def bundle_dir(tmp_path):
    final = tmp_path / "bundle"
    staging = staging_dir_for(final)
    write_meta(staging, make_meta())
    (staging / "model.onnx").write_bytes(b"not really onnx, but hashed like one")
    (staging / "report").mkdir()
    (staging / "report" / "report.md").write_text("# report\n")
    seal_bundle(staging, final)
    return final


def test_sealed_bundle_verifies_and_loads(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.meta.class_names == ("good", "chipped")
    assert len(bundle.bundle_hash) == 64
    assert not any(p.name.startswith(".") for p in bundle_dir.parent.iterdir())  # no staging left behind


def test_one_changed_byte_is_detected_and_named(bundle_dir):
    path = bundle_dir / "model.onnx"
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="model.onnx does not match") as info:
        load_bundle(bundle_dir)
    assert info.value.exit_code == 1


def test_missing_file_is_detected(bundle_dir):
    (bundle_dir / "report" / "report.md").unlink()
    with pytest.raises(BundleIntegrityError, match="report.md is listed in the manifest but missing"):
        verify_manifest(bundle_dir)


def test_unlisted_file_is_detected(bundle_dir):
    (bundle_dir / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleIntegrityError, match="extra.bin is not listed"):
        verify_manifest(bundle_dir)


def test_missing_manifest_is_detected(bundle_dir):
    (bundle_dir / MANIFEST_NAME).unlink()
    with pytest.raises(BundleIntegrityError, match="not a sealed bundle"):
        verify_manifest(bundle_dir)


def test_misspelt_key_in_bundle_json_names_the_key(tmp_path):
    data = make_meta().model_dump(mode="json")
    data["polcy"] = data.pop("policy")
    (tmp_path / META_NAME).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="unknown key 'polcy'"):
        read_meta(tmp_path)


def test_sealing_refuses_to_overwrite_without_permission(bundle_dir):
    staging = staging_dir_for(bundle_dir)
    write_meta(staging, make_meta())
    with pytest.raises(OutputExistsError, match="--overwrite"):
        seal_bundle(staging, bundle_dir)
    assert load_bundle(bundle_dir)  # the old bundle is untouched


def test_manifest_is_sha256sum_compatible(bundle_dir):
    result = subprocess.run(["sha256sum", "-c", MANIFEST_NAME, "--quiet"], cwd=bundle_dir, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_core_loads_no_heavy_framework():
    code = "import sys, inspection.bundle, inspection.decision, inspection.preprocess, inspection.cli, inspection.backends; " \
           "bad = [m for m in ('torch', 'tensorrt', 'gradio', 'onnxruntime', 'training', 'station') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
