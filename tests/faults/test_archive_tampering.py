"""Tampering with an archive a real station wrote, at every position: `inspection audit verify` exits 1.

tests/unit/station/test_audit_verify.py checks each kind of tampering once on a hand-built archive
and the exact diagnosis; here each kind is applied to the first, a middle, the last and a
crash-recovered record of a station's archive (and to its images), through the CLI's exit code.
An attacker drops the append-only triggers first, as anyone with SQLite access can.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from inspection.cli import main
from station.archive.records import RECORD_COLUMNS, chain_hash
from station.config import load_station_config
from station.runner import RunLimits, run_station
from station.sequence_ledger import SequenceLedger, ledger_path
from helpers.faults import small_line, write_config

POSITIONS = ("first", "middle", "last", "recovered")


@pytest.fixture(scope="module")
def station_archive(tiny_bundle, tmp_path_factory) -> Path:
    """A station's archive: a run, a simulated crash with 3 items in flight, and a restart that recovers them."""
    import station.runner as runner

    tmp = tmp_path_factory.mktemp("tamper")
    root = tmp / "arch"
    config = load_station_config(write_config(tmp / "s.yaml", bundle=str(tiny_bundle), station={"lot": "T", "id": "st"},
                                              source=small_line(), archive={"path": str(root), "pass_sample_every": 1}))
    saved, runner.RAW_FPS_SECONDS = runner.RAW_FPS_SECONDS, 0.05
    try:
        first = run_station(config, RunLimits(frames=30), progress=False)
        ledger = SequenceLedger(ledger_path(root, "st"), "T", "st", "op", first["bundle_hash"], "1", 31)
        ledger.open()
        ledger.issue(33)  # the process "dies" here: 31..33 were issued and never archived
        second = run_station(config, RunLimits(frames=10), progress=False)
    finally:
        runner.RAW_FPS_SECONDS = saved
    assert second["recovered_in_flight"]["sequences"] == [31, 32, 33] and second["audit_verified"]
    return root


@pytest.fixture
def archive(station_archive, tmp_path) -> Path:
    return Path(shutil.copytree(station_archive, tmp_path / "arch"))


def verify(root: Path, capsys) -> tuple[int, str]:
    code = main(["audit", "verify", str(root)])
    return code, capsys.readouterr().err


def connect(root: Path) -> sqlite3.Connection:
    db = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    for table in ("records", "dispositions"):
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    return db


def entry_at(db: sqlite3.Connection, position: str) -> int:
    ids = [r[0] for r in db.execute("SELECT entry_id FROM records ORDER BY entry_id")]
    if position == "recovered":
        return db.execute("SELECT MIN(entry_id) FROM records WHERE reason LIKE 'issued but never archived%'").fetchone()[0]
    return {"first": ids[0], "middle": ids[len(ids) // 2], "last": ids[-1]}[position]


def shift_ids(db: sqlite3.Connection, after: int, by: int) -> None:
    # Two steps, so the primary key never collides while rows move.
    db.execute("UPDATE records SET entry_id = entry_id + 1000000 WHERE entry_id > ?", (after,))
    db.execute("UPDATE records SET entry_id = entry_id - 1000000 + ? WHERE entry_id > ?", (by, 1000000 + after))


def edit(db, entry_id):
    db.execute("UPDATE records SET verdict = 'pass', reason = 'ok' WHERE entry_id = ?", (entry_id,))


def delete(db, entry_id):
    db.execute("DELETE FROM records WHERE entry_id = ?", (entry_id,))


def delete_and_renumber(db, entry_id):
    delete(db, entry_id)
    shift_ids(db, entry_id, -1)


def insert_forged_before(db, entry_id):
    """A record with a correct hash over its own contents and a link to the entry before the gap."""
    cursor = db.execute(f"SELECT {', '.join(RECORD_COLUMNS)}, prev_hash FROM records WHERE entry_id = ?", (entry_id,))
    values = cursor.fetchone()
    row = dict(zip(RECORD_COLUMNS, values[:-1]))
    row.update(sequence=row["sequence"] + 100_000, verdict="pass", reason="forged pass")
    shift_ids(db, entry_id - 1, 1)
    placeholders = ", ".join("?" * (len(RECORD_COLUMNS) + 3))
    db.execute(f"INSERT INTO records (entry_id, {', '.join(RECORD_COLUMNS)}, prev_hash, record_hash) VALUES ({placeholders})",
               (entry_id, *row.values(), values[-1], chain_hash(values[-1], "record", row)))


def swap_with_neighbour(db, entry_id):
    last = db.execute("SELECT MAX(entry_id) FROM records").fetchone()[0]
    other = entry_id - 1 if entry_id == last else entry_id + 1
    db.execute("UPDATE records SET entry_id = -1 WHERE entry_id = ?", (entry_id,))
    db.execute("UPDATE records SET entry_id = ? WHERE entry_id = ?", (entry_id, other))
    db.execute("UPDATE records SET entry_id = ? WHERE entry_id = -1", (other,))


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("tamper", [edit, delete, delete_and_renumber, insert_forged_before, swap_with_neighbour],
                         ids=lambda f: f.__name__)
def test_record_tampering_is_detected(archive, capsys, tamper, position):
    assert verify(archive, capsys)[0] == 0
    db = connect(archive)
    tamper(db, entry_at(db, position))
    db.close()
    code, err = verify(archive, capsys)
    assert code == 1 and "audit trail check failed" in err, err


def _images(root: Path) -> list[Path]:
    return sorted((root / "images").rglob("*.png"))


def test_image_edit_delete_and_swap_are_detected(archive, capsys):
    images = _images(archive)
    assert len(images) >= 3
    cases = {
        "edited": lambda: images[0].write_bytes(images[0].read_bytes()[:-1] + b"\0"),
        "deleted": lambda: images[1].unlink(),
        "swapped": lambda: (lambda a, b: (images[2].write_bytes(b), images[-1].write_bytes(a)))(
            images[2].read_bytes(), images[-1].read_bytes()),
    }
    backup = archive.parent / "clean"
    shutil.copytree(archive, backup)
    for name, tamper in cases.items():
        tamper()
        code, err = verify(archive, capsys)
        assert code == 1 and "image" in err, (name, err)
        shutil.rmtree(archive)
        shutil.copytree(backup, archive)
        assert verify(archive, capsys)[0] == 0


def test_chain_head_rewound_or_removed_is_detected(archive, capsys):
    head = archive / "chain_head"
    text = head.read_text()
    head.write_text(text.replace('"entry_id": ', '"entry_id": 1', 1))  # claims entries the chain lacks
    assert verify(archive, capsys)[0] == 1
    head.unlink()
    assert verify(archive, capsys)[0] == 1


@pytest.mark.parametrize("tamper", ["chain_head deleted", "chain_head rewritten", "record edited"])
def test_a_station_refuses_to_append_to_a_tampered_archive_and_keeps_the_evidence(archive, tiny_bundle, tmp_path, capsys, tamper):
    """New records would bury the damage (a missing chain_head would simply be written again): the station
    stops before its first frame, one line, exit 2, and `audit verify` still fails afterwards."""
    head = archive / "chain_head"
    if tamper == "chain_head deleted":
        head.unlink()
    elif tamper == "chain_head rewritten":
        head.write_text(head.read_text().replace('"record_hash": "', '"record_hash": "0', 1))
    else:
        db = connect(archive)
        db.execute("UPDATE records SET reason = 'edited' WHERE entry_id = 2")
        db.close()
    before = sorted(p.relative_to(archive) for p in archive.rglob("*"))
    code = main(["station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--archive", str(archive),
                 "--frames", "3", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "fails its audit check before this run" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.relative_to(archive) for p in archive.rglob("*")) == before
    assert verify(archive, capsys)[0] == 1


def test_a_station_refuses_an_archive_folder_that_holds_something_else(tiny_bundle, tmp_path, capsys):
    dataset = tmp_path / "dataset"
    (dataset / "good").mkdir(parents=True)
    (dataset / "good" / "a.png").write_bytes(b"x")
    code = main(["station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--archive", str(dataset),
                 "--frames", "3", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "is not an archive" in err, err
    assert sorted(p.name for p in dataset.rglob("*")) == ["a.png", "good"]


def test_an_edited_image_is_reported_by_the_run_that_appends_after_it(archive, tiny_bundle, capsys):
    """A station starts without hashing every archived image (that would take as long as the archive is
    large); an append cannot hide an edited image, and the run's own closing check names it, exit 1."""
    image = _images(archive)[0]
    image.write_bytes(image.read_bytes()[:-1] + b"\0")
    code = main(["station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--archive", str(archive),
                 "--frames", "3", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "failed its audit check after this run" in err and "does not match its SHA-256" in err, err
    assert verify(archive, capsys)[0] == 1
