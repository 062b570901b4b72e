"""Bad input: one line on stderr naming the problem and the fix, exit code 2, nothing overwritten."""

import subprocess
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
    assert_one_line_error(run("train", str(tmp_path), "--out", str(tmp_path / "b")), "no class folders")


def test_single_class_dataset(tmp_path):
    import numpy as np

    write_png(tmp_path / "good" / "a.png", np.zeros((8, 8), np.uint8))
    assert_one_line_error(run("data", "index", str(tmp_path), "--out", str(tmp_path / "m.jsonl")), "only one class")


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
