"""audit verify: an intact archive passes; every kind of tampering is detected and named."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from station.archive import Archive, AuditVerificationError, ItemRecord, raise_if_bad, utc_now_iso, verify_archive
from station.archive.records import RECORD_COLUMNS, chain_hash

N_RECORDS = 10


def make_record(sequence: int, verdict: str, image: np.ndarray | None) -> ItemRecord:
    now = utc_now_iso()
    return ItemRecord(
        "L1", "S1", sequence, now, now, now, verdict, None if verdict == "pass" else "chip", f"test {verdict}",
        (0.9, 0.1) if verdict == "pass" else (0.2, 0.8), ("good", "chip"), "ab" * 32, "v1", "op1", image=image,
    )  # fmt: skip


@pytest.fixture(scope="module")
def template_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Entries 1..10 are records with sequence = entry id; odd ones are rejects with an image. Entry 11 is a disposition."""
    root = tmp_path_factory.mktemp("template") / "arch"
    rng = np.random.default_rng(0)
    with Archive.open(root) as archive:
        for seq in range(1, N_RECORDS + 1):
            reject = seq % 2 == 1
            image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) if reject else None
            archive.append(make_record(seq, "reject" if reject else "pass", image))
        archive.append_disposition("L1", 3, "qa1", "reject", "pass", "false reject: dust", signature_meaning="approved")
    return root


@pytest.fixture()
def archive_root(template_root: Path, tmp_path: Path) -> Path:
    # Durable appends cost an fsync each; build once, tamper with a copy per test.
    return Path(shutil.copytree(template_root, tmp_path / "arch"))


def sql(root: Path, *statements: str, params: tuple = ()) -> None:
    """Tamper the way an attacker with SQLite access would: drop the triggers first."""
    db = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    for table in ("records", "dispositions"):
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    for statement in statements:
        db.execute(statement, params if "?" in statement else ())
    db.close()


def record_row(root: Path, entry_id: int) -> dict:
    db = sqlite3.connect(root / "index.sqlite")
    cursor = db.execute("SELECT * FROM records WHERE entry_id=?", (entry_id,))
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    db.close()
    return row


def test_intact_archive_verifies(archive_root: Path) -> None:
    result = verify_archive(archive_root)
    assert result.ok and result.first_bad is None and result.problems == 0
    assert (result.records_checked, result.dispositions_checked, result.images_checked) == (N_RECORDS, 1, 5)
    assert result.orphan_images == 0 and result.head_entry_id == N_RECORDS + 1
    raise_if_bad(result)


def test_dropped_triggers_alone_are_not_a_failure(archive_root: Path) -> None:
    sql(archive_root)
    assert verify_archive(archive_root).ok


@pytest.mark.parametrize(
    "column, value",
    [("verdict", "'pass'"), ("reason", "'edited reason'"), ("scores_json", "'[0.9,0.1]'"), ("late", "1"), ("captured_utc", "'2020-01-01T00:00:00.000000Z'"), ("image_sha256", "NULL"), ("sequence", "5.0")],
)
def test_edited_field_is_detected(archive_root: Path, column: str, value: str) -> None:
    sql(archive_root, f"UPDATE records SET {column}={value} WHERE entry_id=5")
    result = verify_archive(archive_root)
    assert not result.ok
    assert result.first_bad.startswith("record 5 (lot L1, sequence 5")
    assert result.first_bad.endswith("hash does not match its contents (edited)")


def test_edited_disposition_is_detected(archive_root: Path) -> None:
    sql(archive_root, "UPDATE dispositions SET user='someone else'")
    assert verify_archive(archive_root).first_bad == "disposition 11 (lot L1, sequence 3): hash does not match its contents (edited)"


def test_deleted_middle_record_is_detected(archive_root: Path) -> None:
    sql(archive_root, "DELETE FROM records WHERE entry_id=5")
    result = verify_archive(archive_root)
    assert result.first_bad == "record 6 (lot L1, sequence 6): entries 5..5 before it are missing (deleted)"
    assert result.problems == 1  # resynchronised: one deletion, one problem


def test_deleted_and_renumbered_record_is_detected(archive_root: Path) -> None:
    # Hide the gap: the chain hash does not cover entry_id, but the link to the deleted entry is gone.
    sql(archive_root, "DELETE FROM records WHERE entry_id=5", "UPDATE records SET entry_id=entry_id-1 WHERE entry_id>5")
    result = verify_archive(archive_root)
    assert result.first_bad.startswith("record 5 (lot L1, sequence 6): the entry it links to is missing")
    assert "deleted" in result.first_bad


def test_deleted_last_record_is_detected_by_the_head_file(archive_root: Path) -> None:
    sql(archive_root, "DELETE FROM dispositions", f"DELETE FROM records WHERE entry_id={N_RECORDS}")
    result = verify_archive(archive_root)
    assert result.first_bad == f"the chain ends at entry {N_RECORDS - 1} but chain_head records entry {N_RECORDS + 1}: the last 2 entries were deleted (tail truncation)"


def test_head_file_lagging_one_commit_is_accepted(archive_root: Path) -> None:
    # A crash between the commit and the head-file write leaves the head one commit behind: not tampering.
    (archive_root / "chain_head").write_text(json.dumps({"entry_id": N_RECORDS, "record_hash": record_row(archive_root, N_RECORDS)["record_hash"]}))
    assert verify_archive(archive_root).ok


def test_head_file_deleted_or_rewritten_is_detected(archive_root: Path) -> None:
    head = archive_root / "chain_head"
    head.write_text(json.dumps({"entry_id": 4, "record_hash": "f" * 64}))
    assert verify_archive(archive_root).first_bad == "entry 4 does not match the hash in chain_head (rewritten)"
    head.unlink()
    assert "chain_head is missing (deleted)" in verify_archive(archive_root).first_bad


def test_inserted_forged_record_is_detected(archive_root: Path) -> None:
    # A careful forger: shift later ids, link the forged record to entry 5 and give it a valid hash.
    prev = record_row(archive_root, 5)["record_hash"]
    forged = {**{c: record_row(archive_root, 6)[c] for c in RECORD_COLUMNS}, "sequence": 55, "verdict": "pass", "image_sha256": None}
    forged_hash = chain_hash(prev, "record", forged)
    columns = ", ".join(("entry_id", *RECORD_COLUMNS, "prev_hash", "record_hash"))
    sql(
        archive_root,
        "UPDATE records SET entry_id=entry_id+1000 WHERE entry_id>5",
        "UPDATE dispositions SET entry_id=entry_id+1000",
        "UPDATE records SET entry_id=entry_id-999 WHERE entry_id>1000",
        "UPDATE dispositions SET entry_id=entry_id-999",
        f"INSERT INTO records ({columns}) VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 3))})",
        params=(6, *forged.values(), prev, forged_hash),
    )
    result = verify_archive(archive_root)
    assert result.first_bad == "record 7 (lot L1, sequence 6): it links to entry 5, so entries 6..6 before it were inserted"


def test_naively_inserted_record_is_detected(archive_root: Path) -> None:
    row = record_row(archive_root, 4)
    row.update(entry_id=100, sequence=100)
    sql(archive_root, f"INSERT INTO records ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", params=tuple(row.values()))
    assert verify_archive(archive_root).first_bad == "record 100 (lot L1, sequence 100): hash does not match its contents (edited)"


def test_swapped_records_are_detected_as_reordered(archive_root: Path) -> None:
    sql(
        archive_root,
        "UPDATE records SET entry_id=-1 WHERE entry_id=4",
        "UPDATE records SET entry_id=4 WHERE entry_id=5",
        "UPDATE records SET entry_id=5 WHERE entry_id=-1",
    )
    result = verify_archive(archive_root)
    assert result.first_bad == "record 4 (lot L1, sequence 5): it links to entry 5, which comes after it (entries reordered)"


def test_edited_image_is_detected(archive_root: Path) -> None:
    sha = record_row(archive_root, 3)["image_sha256"]
    path = archive_root / "images" / sha[:2] / f"{sha}.png"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_archive(archive_root).first_bad == f"record 3 (lot L1, sequence 3): image {sha}.png does not match its SHA-256 (edited)"


def test_deleted_image_is_detected(archive_root: Path) -> None:
    sha = record_row(archive_root, 7)["image_sha256"]
    (archive_root / "images" / sha[:2] / f"{sha}.png").unlink()
    result = verify_archive(archive_root)
    assert result.first_bad == f"record 7 (lot L1, sequence 7): image {sha}.png is missing (deleted)"
    with pytest.raises(AuditVerificationError, match="is missing \\(deleted\\)") as info:
        raise_if_bad(result)
    assert info.value.exit_code == 1


def test_orphan_image_is_reported_not_an_error(archive_root: Path) -> None:
    orphan = archive_root / "images" / "00" / ("00" * 32 + ".png")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"left by a crash between image and row")
    result = verify_archive(archive_root)
    assert result.ok and result.orphan_images == 1


def test_forged_tail_with_valid_hashes_is_not_detected_without_an_anchor(archive_root: Path) -> None:
    """A documented limit (docs/audit_trail.md): without a secret or an external anchor, a valid-looking
    appended entry passes. The head hash quoted in the signed batch report is what exposes it."""
    anchored = verify_archive(archive_root).head_hash
    prev = anchored
    forged = {**{c: record_row(archive_root, 2)[c] for c in RECORD_COLUMNS}, "sequence": 99}
    columns = ", ".join(("entry_id", *RECORD_COLUMNS, "prev_hash", "record_hash"))
    sql(archive_root, f"INSERT INTO records ({columns}) VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 3))})", params=(12, *forged.values(), prev, chain_hash(prev, "record", forged)))
    result = verify_archive(archive_root)
    assert result.ok and result.head_hash != anchored
    # With the anchor from the signed report, a rewrite of the anchored entry or a truncated tail is caught.
    assert verify_archive(archive_root, anchors=[(N_RECORDS + 1, anchored)]).ok
    sql(archive_root, "DELETE FROM records WHERE entry_id=12", "DELETE FROM dispositions")
    (archive_root / "chain_head").write_text(json.dumps({"entry_id": N_RECORDS, "record_hash": record_row(archive_root, N_RECORDS)["record_hash"]}))
    assert verify_archive(archive_root).ok  # truncation plus a rewritten head file: invisible without the anchor
    assert verify_archive(archive_root, anchors=[(N_RECORDS + 1, anchored)]).first_bad == (
        f"anchored entry {N_RECORDS + 1} is not in the chain (ends at entry {N_RECORDS}): deleted or truncated"
    )


def test_missing_archive_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no archive at") as info:
        verify_archive(tmp_path)
    assert info.value.exit_code == 2
