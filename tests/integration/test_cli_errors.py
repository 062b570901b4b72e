"""Bad input: one line on stderr naming the problem and the fix, exit code 2, nothing overwritten."""

import json
import os
import shutil
import subprocess
from pathlib import Path
import sys

import pytest

from helpers.images import make_two_class_dataset, write_png


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_empty_dataset_folder(tmp_path):
    (tmp_path / "data").mkdir()
    assert_one_line_error(run("train", str(tmp_path / "data"), "--out", str(tmp_path / "b")), "no class folders")


def test_single_class_dataset(tmp_path):
    import numpy as np

    write_png(tmp_path / "data" / "good" / "a.png", np.zeros((8, 8), np.uint8))
    assert_one_line_error(run("data", "index", str(tmp_path / "data"), "--out", str(tmp_path / "m.jsonl")), "only one class")


def test_missing_dataset_folder(tmp_path):
    assert_one_line_error(run("data", "index", str(tmp_path / "nope")), "does not exist")


def test_unknown_model_name(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--model", "resnet_9000"), "unknown model", "torchvision")


def test_impossible_option_value(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--image-size", "8"), "image_size_px")


@pytest.mark.parametrize("value", ["1.5", "half"])
def test_bad_item_crop_share(tmp_path, value):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--item-crop", value), "item_crop_fraction")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("value", ["0", "ten minutes"])
def test_bad_time_budget(tmp_path, value):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--budget-s", value), "time_budget_s")
    assert not (tmp_path / "b").exists()


def test_negative_hard_example_boost(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--hard-example-boost", "-1"), "hard_example_boost")
    assert not (tmp_path / "b").exists()


def test_no_good_class_can_be_told(tmp_path):
    data = tmp_path / "data"
    make_two_class_dataset(data, per_class=6, size_px=32)
    (data / "good").rename(data / "fine")
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b")), "--good")


def test_cuda_requested_without_a_gpu_is_an_error_not_a_fallback(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--device", "cuda"), "--device cpu")


def test_resume_without_a_checkpoint(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--resume"), "--resume")


def test_missing_weights_file(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--weights", str(tmp_path / "w.pt")), "does not exist")


def test_synth_into_a_non_empty_folder_keeps_its_files(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    assert_one_line_error(run("data", "synth", str(tmp_path), "--count", "1"))
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_data_make_with_a_misspelt_key_and_then_a_good_definition(tmp_path):
    definition = tmp_path / "set.yaml"
    definition.write_text("count_per_clas: 1\n")
    assert_one_line_error(run("data", "make", str(definition)), "unknown key 'count_per_clas'", "Did you mean 'count_per_class'?")
    definition.write_text("count_per_class: 1\nsize_px: 64\n")
    made = run("data", "make", str(definition), "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["made"] and summary["total"] == 7 and Path(summary["path"]) == tmp_path / "generated" / "set"
    again = run("data", "make", str(definition))
    assert again.returncode == 0 and "already holds this dataset" in again.stdout


def test_synth_with_an_impossible_png_level(tmp_path):
    assert_one_line_error(run("data", "synth", str(tmp_path / "s"), "--count", "1", "--png-level", "12"), "png_level")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("size", ["96y64", "96x", "x64", "640x480x3"])
def test_synth_with_a_size_that_is_no_size(tmp_path, size):
    assert_one_line_error(run("data", "synth", str(tmp_path / "s"), "--count", "1", "--size", size), "WIDTHxHEIGHT (640x480)")
    assert not (tmp_path / "s").exists()


def test_synth_with_a_frame_height_out_of_range(tmp_path):
    assert_one_line_error(run("data", "synth", str(tmp_path / "s"), "--count", "1", "--size", "96x8"), "height_px=8")
    assert not (tmp_path / "s").exists()


def test_eval_of_a_folder_that_is_no_bundle(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    (tmp_path / "b").mkdir()
    assert_one_line_error(run("eval", str(tmp_path / "b"), str(data)), "not a model bundle")
    # A bundle.json without its manifest is a bundle whose seal is gone: an integrity failure (exit 1).
    (tmp_path / "b" / "bundle.json").write_text("{}")
    result = run("eval", str(tmp_path / "b"), str(data))
    assert result.returncode == 1 and "not a sealed bundle" in result.stderr


def test_unwritable_output_is_one_line(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run("data", "index", str(data), "--out", str(blocker / "m.jsonl")), "Check the path")


def test_unknown_subcommand_is_a_usage_error():
    result = run("trian")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_overwrite_never_deletes_the_dataset_nor_lands_inside_it(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    before = _tree(data)
    assert_one_line_error(run("train", str(data), "--out", str(data), "--overwrite", "--epochs", "1"), "holds the input")
    assert_one_line_error(run("train", str(data), "--out", str(data / "b"), "--epochs", "1"), "inside the input")
    assert_one_line_error(run("train", str(data / "good"), "--out", str(data), "--overwrite"), "holds the input")
    # --overwrite replaces a bundle, not any folder.
    other = tmp_path / "notes"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("x")
    assert_one_line_error(run("train", str(data), "--out", str(other), "--overwrite", "--epochs", "1"), "not a bundle")
    assert _tree(data) == before and (other / "keep.txt").read_text() == "x"


def test_bundle_import_never_replaces_the_folder_of_its_model(tmp_path):
    model = tmp_path / "models" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"not read")
    assert_one_line_error(run("bundle", "import", str(model), "--out", str(model.parent), "--classes", "a,b", "--good", "a",
                              "--overwrite"), "holds the input")
    assert model.read_bytes() == b"not read"
    assert_one_line_error(run("bundle", "import", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "b"),
                              "--classes", "a,b", "--good", "a"), "does not exist")


def test_data_index_refreshes_a_manifest_but_never_clobbers_another_file_or_writes_into_root(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    before = _tree(data)
    script = tmp_path / "notes.sh"
    script.write_text("echo keep\n")
    assert_one_line_error(run("data", "index", str(data), "--out", str(script)), "not a dataset manifest")
    assert script.read_text() == "echo keep\n"
    assert_one_line_error(run("data", "index", str(data), "--out", str(data / "m.jsonl")), "into the dataset")
    inside = subprocess.run([sys.executable, "-m", "inspection.cli", "data", "index", "."], cwd=data, capture_output=True,
                            text=True, timeout=300)
    assert inside.returncode == 2 and "into the dataset" in inside.stderr
    manifest = tmp_path / "m.jsonl"
    assert run("data", "index", str(data), "--out", str(manifest)).returncode == 0
    assert run("data", "index", str(data), "--out", str(manifest)).returncode == 0  # a manifest is refreshed
    assert _tree(data) == before


def test_a_file_name_that_is_not_utf8_is_listed_and_left_out(tmp_path):
    import os

    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    with open(os.fsencode(data / "good") + b"/caf\xe9.png", "wb") as handle:
        handle.write((data / "good" / "good_000.png").read_bytes())
    result = run("data", "index", str(data), "--out", str(tmp_path / "m.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    assert "1 file(s) excluded" in result.stderr and "not valid UTF-8" in result.stderr
    assert '"images": 6' in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["station", "run", "--bundle", "b", "--source", "synthetic", "--frames", "0"], "--frames"),
    (["station", "run", "--bundle", "b", "--source", "synthetic", "--duration-s", "-1"], "--duration-s"),
    (["station", "run", "--bundle", "b", "--source", "synthetic", "--duration-s", "nan"], "--duration-s"),
    (["export", "b", "--precision", "fp16"], "add --tensorrt"),
    (["train", "d", "--out", "b", "--epochs", "x"], "--epochs"),
    (["label", "d", "--port", "99999"], "TCP port"),
    (["bench", "--precisions", "fp8"], "unknown precision fp8"),
    (["bench", "--batch-sizes", "0,8"], "--batch-sizes"),
    (["bench", "--models", ","], "--models"),
    (["bench", "--threads", "0"], "--threads"),
    (["no-such-command"], "invalid choice"),
])
def test_usage_mistakes_are_one_line(args, needle):
    assert_one_line_error(run(*args), needle)


def test_bench_checks_its_comparison_file_before_it_runs(tmp_path):
    assert_one_line_error(run("bench", "--compare", str(tmp_path / "nope.json"), "--json-out", str(tmp_path / "r.json")),
                          "cannot be read as a result JSON")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert_one_line_error(run("bench", "--compare", str(tmp_path / "list.json")), "is not an `inspection bench` result")
    assert_one_line_error(run("bench", "--json-out", str(tmp_path / "r.md")), "does not end in .json")
    assert_one_line_error(run("bench", "--json", str(tmp_path / "r.md")), "does not end in .json")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.md").exists()


def test_an_unknown_good_class_is_named_before_training(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--good", "nosuch"), "nosuch", "defect, good")


def test_good_classes_that_leave_no_defect_class_are_refused_before_training(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--good", "good,defect"),
                          "names every class", "nothing would be a defect")
    assert not (tmp_path / "b").exists()


def test_a_model_that_cannot_take_the_input_size_is_named_before_training(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--model", "vit_b_32", "--image-size", "64"),
                          "vit_b_32 cannot take 64 px")


def test_a_corrupt_checkpoint_is_an_error_on_resume(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    (tmp_path / "b.checkpoints").mkdir()
    (tmp_path / "b.checkpoints" / "last.pt").write_bytes(b"\x80\x02garbage")
    assert_one_line_error(run("train", str(data), "--out", str(tmp_path / "b"), "--resume"), "cannot be read as a training checkpoint")


def test_text_files_that_are_not_utf8_are_named(tmp_path, tiny_bundle_copy):
    config = tmp_path / "s.yaml"
    config.write_bytes(b"station:\n  id: \xff\xfe\n")
    assert_one_line_error(run("station", "run", str(config)), "not UTF-8")
    bundle, _data = tiny_bundle_copy
    (bundle / "manifest.sha256").write_bytes(b"\xff\xfe" + (bundle / "manifest.sha256").read_bytes())
    result = run("bundle", "verify", str(bundle))
    assert result.returncode == 1 and "not UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_latency_png_never_overwrites(tmp_path, tiny_bundle):
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"png")
    assert_one_line_error(run("station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--frames", "2",
                              "--latency-png", str(existing)), "already exists")
    assert_one_line_error(run("station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--frames", "2",
                              "--latency-png", str(tmp_path / "plot.sh")), "does not end in .png")
    assert existing.read_bytes() == b"png"


def test_the_demo_never_replaces_what_it_did_not_write(tmp_path):
    """The demo replaces data/, bundle/ and archive/ in its work folder: only in a folder it marked as its own."""
    workdir = tmp_path / "work"
    (workdir / "archive").mkdir(parents=True)
    (workdir / "archive" / "index.sqlite").write_bytes(b"a line's real archive")
    assert_one_line_error(run("demo", "--workdir", str(workdir)), "not a work folder of the demo")
    assert (workdir / "archive" / "index.sqlite").read_bytes() == b"a line's real archive"
    assert not (workdir / ".inspection-demo").exists()


def test_station_outputs_never_land_in_the_bundle_or_the_replayed_folder(tmp_path, tiny_bundle_copy):
    import shutil

    bundle, data = tiny_bundle_copy
    replay = Path(shutil.copytree(data / "good", tmp_path / "replay"))
    for archive, needle in ((bundle / "arch", "inside the sealed bundle"), (replay / "arch", "inside the replayed folder")):
        assert_one_line_error(run("station", "run", "--bundle", str(bundle), "--source", str(replay), "--archive", str(archive),
                                  "--frames", "2"), needle)
        assert not archive.exists()
    assert run("bundle", "verify", str(bundle)).returncode == 0


def test_quick_start_options_next_to_a_yaml_are_refused_not_ignored(tmp_path, tiny_bundle):
    config = tmp_path / "s.yaml"
    config.write_text(f"station: {{id: a, lot: L}}\nbundle: {tiny_bundle}\nsource: {{kind: synthetic}}\n")
    assert_one_line_error(run("station", "run", str(config), "--archive", str(tmp_path / "a"), "--rate", "2"),
                          "--rate, --archive belong to the quick start")
    assert not (tmp_path / "a").exists()


def test_a_camera_index_beyond_any_camera_is_one_line(tiny_bundle):
    assert_one_line_error(run("station", "run", "--bundle", str(tiny_bundle), "--source", "99999999999999999999", "--frames", "1"),
                          "OpenCV cannot open capture source")


def test_data_export_never_writes_into_the_dataset_nor_removes_a_folder(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    before = _tree(data)
    assert_one_line_error(run("data", "export", str(data), "--out", str(data / "exported"), "--workspace", str(tmp_path / "ws")),
                          "inside the dataset")
    partial = tmp_path / ".copy.partial"
    (partial / "mine.txt").parent.mkdir()
    (partial / "mine.txt").write_text("keep")
    result = run("data", "export", str(data), "--out", str(tmp_path / "copy"), "--workspace", str(tmp_path / "ws"))
    assert result.returncode == 0, result.stderr
    assert (partial / "mine.txt").read_text() == "keep" and _tree(data) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.partial-")]


def test_a_folder_that_is_not_a_workspace_is_refused(tmp_path):
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=32)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert_one_line_error(run("data", "export", str(data), "--out", str(tmp_path / "copy"), "--workspace", str(other)),
                          "not a labeling workspace")
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_users_file_that_is_a_folder_is_named_as_such(tmp_path):
    result = subprocess.run([sys.executable, "-m", "inspection.cli", "users", "add", "anna", "--role", "reviewer",
                             "--users", str(tmp_path)], input="correct-horse-9\ncorrect-horse-9\n", capture_output=True,
                            text=True, timeout=60)
    assert_one_line_error(result, "is a folder")


def test_a_bundle_is_never_written_inside_another(tmp_path, tiny_bundle_copy):
    bundle, data = tiny_bundle_copy
    assert_one_line_error(run("train", str(data), "--out", str(bundle / "inner"), "--epochs", "1"), "inside the sealed bundle")
    assert run("bundle", "verify", str(bundle)).returncode == 0


def test_the_demo_adopts_its_own_folder_and_a_fresh_volume_is_an_archive_folder(tmp_path):
    from training.demo import DEMO_MARKER, _claim_workdir
    from station.runner import check_archive_before_run

    workdir = tmp_path / "work"
    _claim_workdir(workdir)
    (workdir / "archive").mkdir()
    (workdir / "archive" / "index.sqlite").write_bytes(b"an earlier demo's")
    _claim_workdir(workdir)  # marked: its own outputs may be replaced
    earlier = tmp_path / "earlier"  # left by a version of the demo that wrote no marker
    (earlier / "data").mkdir(parents=True)
    (earlier / "data" / "synth.json").write_text("{}")
    _claim_workdir(earlier)
    assert (earlier / DEMO_MARKER).is_file()
    volume = tmp_path / "volume"
    (volume / "lost+found").mkdir(parents=True)
    (volume / ".gitkeep").write_text("")
    check_archive_before_run(volume)


def test_a_video_that_is_no_video_is_one_line_without_ffmpegs_own(tmp_path, tiny_bundle):
    video = tmp_path / "clip.mp4"
    video.write_bytes(bytes(range(256)) * 8)
    assert_one_line_error(run("station", "run", "--bundle", str(tiny_bundle), "--source", str(video), "--frames", "1"),
                          "OpenCV cannot open capture source")


@pytest.mark.skipif(shutil.which("capsh") is None or os.geteuid() != 0,
                    reason="needs root and capsh, to run the station with CAP_SYS_NICE dropped (CI runs as root)")
def test_a_realtime_gate_without_permission_is_refused_before_the_line_starts(tiny_bundle, tmp_path):
    config = tmp_path / "station.yaml"
    config.write_text(f"bundle: {tiny_bundle}\ngate: {{thread_priority: realtime}}\n"
                      f"source: {{kind: synthetic, pool_size: 8, width_px: 64, height_px: 64}}\n"
                      f"archive: {{path: {tmp_path / 'archive'}}}\n")
    command = f"{sys.executable} -m inspection.cli station run {config} --frames 10 --json"
    result = subprocess.run(["capsh", "--drop=cap_sys_nice", "--", "-c", command], capture_output=True, text=True, timeout=300)
    assert_one_line_error(result, "not permitted to set real-time scheduling", "CAP_SYS_NICE", "gate.thread_priority: normal")
    assert not (tmp_path / "archive").exists()  # refused before anything was opened or written
