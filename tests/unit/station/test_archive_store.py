"""Archive store: round trip, lossless images named by hash, append-only triggers, error paths."""

from __future__ import annotations

import errno
import math
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from inspection.file_manifest import sha256_file
from inspection.image_io import read_image
from station.archive import Archive, ArchiveError, ItemRecord, utc_now_iso, verify_archive
from station.archive import store as store_module


def make_record(sequence: int, verdict: str = "pass", image: np.ndarray | None = None, **overrides) -> ItemRecord:
    now = utc_now_iso()
    fields = dict(
        lot="L1", station="S1", sequence=sequence, captured_utc=now, decided_utc=now, signalled_utc=now,
        verdict=verdict, defect_class=None if verdict == "pass" else "chip", reason=f"test {verdict}",
        scores=(0.9, 0.1) if verdict == "pass" else (0.2, 0.8), class_names=("good", "chip"),
        bundle_hash="ab" * 32, thresholds_version="v1", operator="op1",
    )  # fmt: skip
    fields.update(overrides)
    return ItemRecord(image=image, **fields)


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_utc_now_iso_has_microseconds_and_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_now_iso())


def test_round_trip_and_hash_chain(tmp_path: Path) -> None:
    written = [make_record(0), make_record(1, "reject", noise((20, 30, 3)), late=True, true_label="chip"), make_record(2, "fault", scores=(), reason="timeout")]
    with Archive.open(tmp_path / "arch") as archive:
        hashes = [archive.append(r) for r in written]
        rows = list(archive.records())
        assert archive.head() == (3, hashes[-1])
    assert [r["record_hash"] for r in rows] == hashes
    assert rows[0]["prev_hash"] == "0" * 64
    assert [r["prev_hash"] for r in rows[1:]] == hashes[:-1]
    for record, row in zip(written, rows):
        for name in ItemRecord.__slots__:
            if name != "image":
                assert row[name] == getattr(record, name), name
    assert rows[0]["image_sha256"] is None and rows[2]["scores"] == ()
    assert isinstance(rows[1]["late"], bool) and rows[1]["late"]
    assert (tmp_path / "arch" / "chain_head").read_text().count(hashes[-1]) == 1


def test_non_finite_scores_round_trip(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.append(make_record(0, "fault", scores=(math.nan, math.inf)))
        scores = next(archive.records())["scores"]
    assert math.isnan(scores[0]) and scores[1] == math.inf
    assert verify_archive(tmp_path).ok


@pytest.mark.parametrize("shape", [(24, 40, 3), (17, 9)])
def test_image_is_lossless_and_named_by_its_sha(tmp_path: Path, shape: tuple[int, ...]) -> None:
    image = noise(shape, seed=3)
    with Archive.open(tmp_path) as archive:
        archive.append(make_record(0, "reject", image))
        archive.append(make_record(1, "reject", image.copy()))  # same pixels: stored once
        sha = next(archive.records())["image_sha256"]
        path = archive.image_path(sha)
    assert path == tmp_path / "images" / sha[:2] / f"{sha}.png"
    assert sha256_file(path) == sha
    np.testing.assert_array_equal(read_image(path), image)
    assert len(list((tmp_path / "images").rglob("*.png"))) == 1


def test_sqlite_settings_and_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.append(make_record(0, "reject"))
        archive.append_disposition("L1", 0, "qa1", "reject", "pass", "false reject: dust")
    db = sqlite3.connect(tmp_path / "index.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for table in ("records", "dispositions"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(f"UPDATE {table} SET reason='changed'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(f"DELETE FROM {table}")
    assert db.execute("SELECT reason FROM records").fetchone()[0] == "test reject"
    db.close()


def test_queries(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        for i, verdict in enumerate(["pass", "pass", "reject", "uncertain"]):
            archive.append(make_record(i, verdict))
        archive.append(make_record(7, "fault", lot="L2", station="S2"))
        assert archive.lots() == ["L1", "L2"]
        assert archive.counts("L1") == {"pass": 2, "reject": 1, "uncertain": 1, "fault": 0}
        assert archive.last_sequence("L1", "S1") == 3
        assert archive.last_sequence("L2", "S2") == 7
        assert archive.last_sequence("L2", "S1") is None
        assert [r["sequence"] for r in archive.records("L2")] == [7]


def test_dispositions_chain_with_records_and_check_the_current_verdict(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.append(make_record(0, "uncertain"))
        archive.append_disposition("L1", 0, "qa1", "uncertain", "reject", "confirmed chip", "chip", signature_meaning="reviewed")
        archive.append(make_record(1))
        with pytest.raises(ArchiveError, match="current verdict is 'reject'"):
            archive.append_disposition("L1", 0, "qa2", "uncertain", "pass", "stale view")
        with pytest.raises(ArchiveError, match="not in the archive"):
            archive.append_disposition("L1", 99, "qa2", "pass", "reject", "no such item")
        with pytest.raises(ArchiveError, match="user and reason"):
            archive.append_disposition("L1", 1, "qa2", "pass", "reject", "")
        (disposition,) = archive.dispositions("L1")
        assert [r["entry_id"] for r in archive.records()] == [1, 3]
    assert disposition["entry_id"] == 2 and disposition["station"] == "S1" and disposition["new_defect_class"] == "chip"
    result = verify_archive(tmp_path)
    assert result.ok and result.records_checked == 2 and result.dispositions_checked == 1


def test_sequence_must_increase_and_bad_records_are_refused(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.append(make_record(5))
        with pytest.raises(ArchiveError, match="sequence 5 is not after the last archived sequence 5"):
            archive.append(make_record(5))
        with pytest.raises(ArchiveError, match="verdict is 'maybe'"):
            archive.append(make_record(6, verdict="maybe"))
        with pytest.raises(ArchiveError, match="captured_utc"):
            archive.append(make_record(6, captured_utc="2026-11-26 16:01:02"))
        with pytest.raises(ArchiveError, match="uint8"):
            archive.append(make_record(6, "reject", np.zeros((8, 8), dtype=np.float32)))
        with pytest.raises(ArchiveError, match="lot holds a control character"):
            archive.append(make_record(6, lot="L1\nL2"))
        assert [r["sequence"] for r in archive.records()] == [5]


def test_unwritable_root_is_an_archive_error_naming_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ArchiveError, match=r"archive folder .*a_file/archive cannot be created or written") as info:
        Archive.open(blocker / "archive")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    with pytest.raises(ArchiveError, match="no archive at"):
        Archive.open(tmp_path / "missing", create=False)


def test_image_write_failure_leaves_the_archive_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store_module._write_file_durably

    def disk_full(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    with Archive.open(tmp_path) as archive:
        archive.append(make_record(0, "reject", noise((8, 8, 3), 1)))
        monkeypatch.setattr(store_module, "_write_file_durably", disk_full)
        with pytest.raises(ArchiveError, match="disk full or not writable") as info:
            archive.append(make_record(1, "reject", noise((8, 8, 3), 2)))
        assert "images" in str(info.value)
        assert [r["sequence"] for r in archive.records()] == [0]
        monkeypatch.setattr(store_module, "_write_file_durably", real_write)  # space freed
        archive.append(make_record(1, "reject", noise((8, 8, 3), 2)))
    result = verify_archive(tmp_path)
    assert result.ok and result.records_checked == 2 and result.orphan_images == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_connection_belongs_to_its_thread_and_readers_open_their_own(tmp_path: Path) -> None:
    archive = Archive.open(tmp_path)
    archive.append(make_record(0))
    seen: list[object] = []

    def reader() -> None:
        try:
            archive.lots()
        except sqlite3.ProgrammingError as exc:
            seen.append(exc)
        with Archive.open(tmp_path, create=False) as own:
            seen.append(own.counts("L1")["pass"])

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    archive.close()
    assert isinstance(seen[0], sqlite3.ProgrammingError) and seen[1] == 1


def test_opening_for_writing_refuses_a_missing_or_foreign_chain_head(tmp_path: Path) -> None:
    """The next append would rewrite chain_head and erase the evidence that it was deleted or changed."""
    root = tmp_path / "arch"
    with Archive.open(root) as archive:
        archive.append(make_record(0))
        archive.append(make_record(1))
    head = root / "chain_head"
    text = head.read_text()
    head.unlink()
    with pytest.raises(ArchiveError, match="missing while"):
        Archive.open(root)
    assert not head.exists()
    head.write_text(text.replace('"record_hash": "', '"record_hash": "f', 1))
    with pytest.raises(ArchiveError, match="does not match the index"):
        Archive.open(root)
    # Reading is still allowed: that is how `audit verify` and the reports see the damage.
    Archive.open(root, create=False).close()


def test_an_index_ahead_of_chain_head_is_accepted_for_writing(tmp_path: Path) -> None:
    """A crash between a commit and the head write leaves the index ahead; `audit verify` accepts that too."""
    root = tmp_path / "arch"
    with Archive.open(root) as archive:
        archive.append(make_record(0))
        behind = (root / "chain_head").read_text()
        archive.append(make_record(1))
    (root / "chain_head").write_text(behind)
    with Archive.open(root) as archive:
        archive.append(make_record(2))
    assert verify_archive(root).ok
