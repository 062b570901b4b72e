"""The sequence ledger and the start-up recovery of items that were in flight when a station died."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.archive import Archive, ArchiveError, ItemRecord, utc_now_iso, verify_archive
from station.sequence_ledger import SequenceLedger, ledger_path, read_ledger, recover_in_flight


def record(lot: str, sequence: int) -> ItemRecord:
    now = utc_now_iso()
    return ItemRecord(lot, "st", sequence, now, now, now, "pass", None, "ok", (0.9, 0.1), ("good", "chip"),
                      "ab" * 32, "v1", "op")


def crashed_run(root: Path, lot: str, first: int, issued: int) -> None:
    """A run that issued first..issued and died (no close())."""
    ledger = SequenceLedger(ledger_path(root, "st"), lot, "st", "op", "cd" * 32, "v2", first)
    ledger.open()
    for sequence in range(first, issued + 1):
        ledger.issue(sequence)


def test_numbers_issued_but_not_archived_get_one_fault_record_each(tmp_path):
    root = tmp_path / "arch"
    with Archive.open(root) as archive:
        for sequence in (1, 2, 3):
            archive.append(record("L1", sequence))
    crashed_run(root, "L1", first=4, issued=9)
    with Archive.open(root) as archive:
        archive.append_many([record("L1", 4), record("L1", 5)])  # committed before the crash
    assert recover_in_flight(root, "st") == ("L1", [6, 7, 8, 9])
    with Archive.open(root, create=False) as archive:
        rows = list(archive.records("L1"))
    assert [r["sequence"] for r in rows] == list(range(1, 10))
    recovered = rows[5:]
    assert all(r["verdict"] == "fault" and r["late"] and r["image_sha256"] is None for r in recovered)
    assert all(r["bundle_hash"] == "cd" * 32 and r["thresholds_version"] == "v2" for r in recovered)
    assert verify_archive(root).ok
    assert recover_in_flight(root, "st") == ("L1", [])  # idempotent: a second start finds nothing


def test_recovery_uses_the_lot_of_the_run_that_died(tmp_path):
    root = tmp_path / "arch"
    Archive.open(root).close()
    crashed_run(root, "LOT-A", first=1, issued=2)
    assert recover_in_flight(root, "st") == ("LOT-A", [1, 2])  # whatever lot the next run is configured for


def test_a_ledger_before_its_first_item_recovers_nothing(tmp_path):
    root = tmp_path / "arch"
    Archive.open(root).close()
    crashed_run(root, "L1", first=1, issued=0)
    assert recover_in_flight(root, "st") == ("L1", [])
    assert recover_in_flight(root, "other-station") == ("", [])  # no ledger at all


def test_an_unreadable_ledger_stops_the_start_instead_of_guessing(tmp_path):
    root = tmp_path / "arch"
    Archive.open(root).close()
    ledger_path(root, "st").write_text("{not json")
    with pytest.raises(ArchiveError, match="cannot be read"):
        recover_in_flight(root, "st")


def test_station_ids_map_to_distinct_safe_file_names(tmp_path):
    assert ledger_path(tmp_path, "line 1/cam:2").name == "sequence_ledger.line_1_cam_2"
    assert ledger_path(tmp_path, "a") != ledger_path(tmp_path, "b")


def test_every_write_has_the_same_length_so_no_stale_tail_remains(tmp_path):
    path = tmp_path / "ledger"
    ledger = SequenceLedger(path, "L1", "st", "op", "ab" * 32, "v1", 1)
    ledger.open()
    ledger.issue(123456789)
    ledger.issue(7)
    ledger.close()
    assert read_ledger(path).issued == 7
