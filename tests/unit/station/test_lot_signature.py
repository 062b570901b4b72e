"""Lot sign-off entries: bound to the lot's entry hashes, verified, and tampering with them is detected."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from station.archive import APPROVED_MEANING, Archive, ArchiveError, ItemRecord, utc_now_iso, verify_archive


def make_record(lot: str, sequence: int, verdict: str) -> ItemRecord:
    now = utc_now_iso()
    return ItemRecord(
        lot, "S1", sequence, now, now, now, verdict, None if verdict == "pass" else "chip", f"test {verdict}",
        (0.9, 0.1) if verdict == "pass" else (0.2, 0.8), ("good", "chip"), "ab" * 32, "v1", "op1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def signed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signed") / "arch"
    with Archive.open(root) as archive:
        archive.append_many([make_record("L1", s, "reject" if s % 2 else "pass") for s in range(1, 5)])
        archive.append_many([make_record("L2", s, "pass") for s in range(1, 3)])
        archive.append_disposition("L1", 1, "qa1", "reject", "pass", "dust, not a chip")
        archive.append_lot_signature("L1", "qa1", "Quality Reviewer", APPROVED_MEANING)
    return root


@pytest.fixture()
def signed_root(signed_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(signed_template, tmp_path / "arch"))


def tamper(root: Path, *statements: str) -> None:
    db = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    for table in ("records", "dispositions", "signatures"):
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    for statement in statements:
        db.execute(statement)
    db.close()


def test_signature_binds_the_lots_entries_and_verifies(signed_root: Path) -> None:
    with Archive.open(signed_root, create=False) as archive:
        (signature,) = list(archive.signatures("L1"))
        assert list(archive.signatures("L2")) == []
    assert (signature["user"], signature["full_name"], signature["meaning"]) == ("qa1", "Quality Reviewer", APPROVED_MEANING)
    assert signature["lot_entries"] == 5  # four records and one disposition of L1, none of L2
    result = verify_archive(signed_root)
    assert result.ok, result.first_bad
    assert (result.records_checked, result.dispositions_checked, result.signatures_checked) == (6, 1, 1)


def test_edited_signature_is_detected(signed_root: Path) -> None:
    tamper(signed_root, "UPDATE signatures SET full_name='Someone Else'")
    assert verify_archive(signed_root).first_bad == "signature 8 (lot L1): hash does not match its contents (edited)"


def test_signature_moved_to_another_lot_is_detected_even_when_rehashed(signed_root: Path) -> None:
    # A forger who knows the scheme moves the signature to lot L2 and re-hashes it: the digest no longer fits.
    from station.archive.records import chain_hash
    from station.archive.signatures import SIGNATURE_COLUMNS

    db = sqlite3.connect(signed_root / "index.sqlite")
    row = dict(zip(("prev_hash", *SIGNATURE_COLUMNS), db.execute(f"SELECT prev_hash, {', '.join(SIGNATURE_COLUMNS)} FROM signatures").fetchone()))
    db.close()
    prev = row.pop("prev_hash")
    forged = chain_hash(prev, "signature", {**row, "lot": "L2"})
    tamper(signed_root, f"UPDATE signatures SET lot='L2', record_hash='{forged}'")
    (signed_root / "chain_head").unlink()  # and hides the head
    result = verify_archive(signed_root)
    assert result.first_bad.startswith("signature 8 (lot L2): signed 5 entries of the lot but the chain before it holds 2")


def test_deleted_signature_is_detected(signed_root: Path) -> None:
    tamper(signed_root, "DELETE FROM signatures")
    assert "tail truncation" in verify_archive(signed_root).first_bad


def test_archive_without_signature_table_still_verifies(tmp_path: Path) -> None:
    root = tmp_path / "old"
    with Archive.open(root) as archive:
        archive.append(make_record("L1", 1, "reject"))
    tamper(root, "DROP TABLE signatures")  # as written by the tool before lot signatures existed
    assert verify_archive(root).ok
    with Archive.open(root, create=False) as archive:
        assert list(archive.signatures()) == [] and archive.head()[0] == 1


def test_signing_an_unknown_lot_is_refused(signed_root: Path) -> None:
    with Archive.open(signed_root) as archive, pytest.raises(ArchiveError, match="has no records"):
        archive.append_lot_signature("NOPE", "qa1", "Quality Reviewer", APPROVED_MEANING)
