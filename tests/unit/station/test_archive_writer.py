"""ArchiveWriter: every record archived in order, backpressure instead of dropping, failure stops intake."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from station.archive import (
    Archive, ArchiveBackpressure, ArchiveError, ArchiveFailed, ArchiveWriter, ChainHeadError, ItemRecord, utc_now_iso,
    verify_archive,
)  # fmt: skip
from inspection.image_io import decode_image
from station.archive import store as store_module


def make_record(sequence: int, image: np.ndarray | None = None) -> ItemRecord:
    now = utc_now_iso()
    verdict = "reject" if image is not None else "pass"
    return ItemRecord(
        "L1", "S1", sequence, now, now, None, verdict, "chip" if image is not None else None, "test",
        (0.5, 0.5), ("good", "chip"), "ab" * 32, "v1", "op1", image=image,
    )  # fmt: skip


def archived_sequences(root: Path) -> list[int]:
    with Archive.open(root, create=False) as archive:
        return [r["sequence"] for r in archive.records()]


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_500_records_all_archived_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder_threads: set[str] = set()
    real_encode = store_module.encode_png

    def recording_encode(image: np.ndarray, compression: str) -> bytes:
        encoder_threads.add(threading.current_thread().name)
        return real_encode(image, compression)

    monkeypatch.setattr(store_module, "encode_png", recording_encode)
    rng = np.random.default_rng(0)
    with ArchiveWriter(tmp_path, max_queue=1024) as writer:
        for seq in range(500):
            image = rng.integers(0, 256, (8, 8), dtype=np.uint8) if seq % 50 == 0 else None
            writer.submit(make_record(seq, image))
        writer.flush(timeout_s=30)
        assert writer.archived_count == 500 and writer.queue_depth == 0
    assert archived_sequences(tmp_path) == list(range(500))
    assert encoder_threads == {"archive-writer"}  # never in submit(), i.e. never on the hot path
    result = verify_archive(tmp_path)
    assert result.ok and result.records_checked == 500 and result.images_checked == 10


def test_records_arriving_within_the_group_commit_window_share_one_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_sizes: list[int] = []
    real_append_many = Archive.append_many

    def counting_append_many(self: Archive, records: list[ItemRecord]) -> list[str]:
        batch_sizes.append(len(records))
        return real_append_many(self, records)

    monkeypatch.setattr(Archive, "append_many", counting_append_many)
    with ArchiveWriter(tmp_path, group_commit_s=0.5) as writer:
        for seq in range(5):
            writer.submit(make_record(seq))
            time.sleep(0.01)  # one at a time, as a line delivers them
        writer.flush(timeout_s=10)
    without_window = tmp_path / "without"
    with ArchiveWriter(without_window, group_commit_s=0.0) as writer:
        for seq in range(5):
            writer.submit(make_record(seq))
            time.sleep(0.05)
        writer.flush(timeout_s=10)
    assert batch_sizes == [5, 1, 1, 1, 1, 1]
    assert archived_sequences(tmp_path) == list(range(5)) and archived_sequences(without_window) == list(range(5))


@pytest.mark.parametrize("compression", ["fast", "none"])
def test_images_are_stored_losslessly_with_either_png_compression(tmp_path: Path, compression: str) -> None:
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with ArchiveWriter(tmp_path, png_compression=compression) as writer:
        writer.submit(make_record(0, image))
        writer.flush(timeout_s=10)
    with Archive.open(tmp_path, create=False) as archive:
        (record,) = archive.records()
        assert np.array_equal(decode_image(archive.image_path(record["image_sha256"]).read_bytes(), "archived"), image)
    assert verify_archive(tmp_path).ok


def test_a_group_commit_window_over_a_second_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="group_commit_s=2.0 must be between 0 and 1 second"):
        ArchiveWriter(tmp_path, group_commit_s=2.0)


def test_full_queue_raises_backpressure_and_drops_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release, appending = threading.Event(), threading.Event()
    real_append_many = Archive.append_many

    def slow_append_many(self: Archive, records: list[ItemRecord]) -> list[str]:
        appending.set()
        assert release.wait(10), "test never released the writer"
        return real_append_many(self, records)

    monkeypatch.setattr(Archive, "append_many", slow_append_many)
    writer = ArchiveWriter(tmp_path, max_queue=2)
    writer.start()
    writer.submit(make_record(0))
    # Blocked in append with its batch taken: later submits stay queued (not drawn into that batch).
    assert appending.wait(10)
    writer.submit(make_record(1))
    writer.submit(make_record(2))
    with pytest.raises(ArchiveBackpressure, match="archive queue is full \\(2 records waiting\\) at lot 'L1' sequence 3"):
        writer.submit(make_record(3))
    with pytest.raises(ArchiveError, match="still not archived after 0.05 s"):
        writer.flush(timeout_s=0.05)
    assert writer.archived_count == 0
    release.set()
    writer.close(timeout_s=10)
    assert writer.archived_count == 3 and writer.failure is None
    assert archived_sequences(tmp_path) == [0, 1, 2]


def test_append_failure_stops_intake_and_loses_nothing_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store_module._write_file_durably

    def disk_full_for_images(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    failures: list[Exception] = []
    writer = ArchiveWriter(tmp_path, on_failure=failures.append)
    writer.start()
    for seq in range(10):
        writer.submit(make_record(seq))
    writer.flush(timeout_s=10)
    monkeypatch.setattr(store_module, "_write_file_durably", disk_full_for_images)
    writer.submit(make_record(10, np.zeros((8, 8), dtype=np.uint8)))
    wait_until(lambda: len(failures) == 1)  # the callback runs after `failure` is published
    assert isinstance(writer.failure, ArchiveError) and "disk full or not writable" in str(writer.failure)
    assert failures == [writer.failure]
    with pytest.raises(ArchiveFailed, match="disk full or not writable.*1 records are not archived"):
        writer.submit(make_record(11))
    assert [r.sequence for r in writer.unarchived()] == [10]
    with pytest.raises(ArchiveFailed):
        writer.close(timeout_s=5)
    assert writer.archived_count == 10
    assert archived_sequences(tmp_path) == list(range(10))
    assert verify_archive(tmp_path).ok


def test_chain_head_write_failure_acknowledges_the_committed_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store_module._write_file_durably
    writer = ArchiveWriter(tmp_path)
    writer.start()

    def head_unwritable(path: Path, data: bytes) -> None:
        if path.name == "chain_head":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(store_module, "_write_file_durably", head_unwritable)
    writer.submit(make_record(0))
    wait_until(lambda: writer.failure is not None)
    assert isinstance(writer.failure, ChainHeadError)
    assert writer.archived_count == 1 and writer.unarchived() == []
    with pytest.raises(ArchiveFailed):
        writer.submit(make_record(1))
    writer.close(timeout_s=5)  # nothing is lost, so closing does not raise
    assert archived_sequences(tmp_path) == [0]
    assert verify_archive(tmp_path).ok  # the head file lags one commit: accepted


def test_unwritable_root_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = ArchiveWriter(blocker / "archive")
    with pytest.raises(ArchiveError, match="cannot be created or written"):
        writer.start()
    with pytest.raises(ArchiveError, match="not running"):
        writer.submit(make_record(0))


def test_submit_after_close_is_refused(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path)
    writer.start()
    writer.close(timeout_s=5)
    with pytest.raises(ArchiveError, match="not running"):
        writer.submit(make_record(0))


def test_verify_while_the_writer_appends_never_fails_falsely(tmp_path: Path) -> None:
    results = []
    with ArchiveWriter(tmp_path, max_batch=4) as writer:
        for seq in range(200):
            writer.submit(make_record(seq))
            if seq % 20 == 0:
                results.append(verify_archive(tmp_path))
        writer.flush(timeout_s=30)
    results.append(verify_archive(tmp_path))
    assert all(r.ok for r in results), [r.first_bad for r in results if not r.ok]
    assert results[-1].records_checked == 200
