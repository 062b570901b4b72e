"""`inspection users add`, `inspection data export` and `inspection label` bad input, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.images import make_two_class_dataset
from training.labeling.users import check_password, load_users


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], input=stdin, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_users_add_reads_the_password_twice_from_stdin(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    result = run("users", "add", "alice", "--role", "reviewer", "--full-name", "Alice Example", "--users", str(users), stdin="s3cret-pass\ns3cret-pass\n")
    assert result.returncode == 0, result.stderr
    entry = load_users(users).users["alice"]
    assert entry.full_name == "Alice Example" and check_password("s3cret-pass", entry.password)
    assert_one_line_error(run("users", "add", "bob", "--role", "labeler", "--users", str(users), stdin="one-password\nanother-one\n"), "differ")
    assert_one_line_error(run("users", "add", "alice", "--role", "labeler", "--users", str(users), stdin="s3cret-pass\ns3cret-pass\n"), "already exists")


def test_label_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    data = make_two_class_dataset(tmp_path / "data", per_class=3, size_px=16)
    assert_one_line_error(run("label", str(data), "--users", str(tmp_path / "none.yaml"), "--workspace", str(tmp_path / "ws")), "users add")
    users = tmp_path / "users.yaml"
    run("users", "add", "alice", "--role", "reviewer", "--users", str(users), stdin="s3cret-pass\ns3cret-pass\n")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the workspace folder should go")
    assert_one_line_error(run("label", str(data), "--users", str(users), "--workspace", str(blocker / "ws")), "not writable", "--workspace")
    assert_one_line_error(run("label", str(tmp_path / "missing"), "--users", str(users)), "does not exist")
    assert_one_line_error(run("label", str(data), "--users", str(users), "--workspace", str(tmp_path / "ws"), "--archive", str(tmp_path / "no-archive")), "no archive")


def test_data_export_writes_a_trainable_copy_and_never_overwrites(tmp_path: Path) -> None:
    data = make_two_class_dataset(tmp_path / "data", per_class=4, size_px=16)
    data.chmod(0o555)  # a read-only dataset is fine: nothing is written into it
    try:
        result = run("data", "export", str(data), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr
        assert "exported 8 labeled images" in result.stdout
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["groups.csv", "label_history.jsonl", "manifest.jsonl", "test", "train", "val"]
        assert_one_line_error(run("data", "export", str(data), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "out")), "already exists")
    finally:
        data.chmod(0o755)
