"""Lot report: right totals, the exceptions only, audit-trail result on top."""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from station.archive import Archive, ArchiveError, ItemRecord, utc_now_iso, write_lot_report

# (sequence, verdict, defect class, late, with image): passes 0-5, one late pass, then the exceptions.
LOT_L1 = [
    *[(i, "pass", None, False, i == 0) for i in range(6)],
    (6, "pass", None, True, False),
    (7, "reject", "chip", False, True),
    (8, "reject", "crack", False, True),
    (9, "uncertain", "chip", False, True),
    (10, "fault", None, False, False),
]
EXCEPTIONS = [6, 7, 8, 9, 10]


def make_record(lot: str, sequence: int, verdict: str, defect: str | None, late: bool, image: np.ndarray | None) -> ItemRecord:
    now = utc_now_iso()
    scores = {"pass": (0.95, 0.03, 0.02), "reject": (0.1, 0.7, 0.2), "uncertain": (0.6, 0.3, 0.1)}.get(verdict, ())
    if verdict == "reject" and defect == "crack":
        scores = (0.1, 0.2, 0.7)
    return ItemRecord(
        lot, "S1", sequence, now, now, now, verdict, defect, f"{verdict} <because>", scores, ("good", "chip", "crack"),
        "ab" * 32, "v1", "op1", late=late, image=image,
    )  # fmt: skip


@pytest.fixture()
def archive_root(tmp_path: Path) -> Path:
    root = tmp_path / "arch"
    rng = np.random.default_rng(0)
    records = [
        make_record("L1", seq, verdict, defect, late, rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) if with_image else None)
        for seq, verdict, defect, late, with_image in LOT_L1
    ]
    records.append(make_record("L2", 0, "reject", "chip", False, None))
    with Archive.open(root) as archive:
        archive.append_many(records)  # one transaction: the fixture stays fast on a slow disk
        archive.append_disposition("L1", 9, "qa1", "uncertain", "pass", "dust, not a chip")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_totals_and_exceptions_only(archive_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    html_path, csv_path = write_lot_report(archive_root, "L1", out)
    assert (html_path.name, csv_path.name) == ("lot_L1.html", "lot_L1.csv")
    page = html_path.read_text(encoding="utf-8")
    totals = dict(re.findall(r"<tr><th>(\w+)</th><td>(\d+)</td></tr>", page.split('id="totals">')[1].split("</table>")[0]))
    assert totals == {"pass": "7", "reject": "2", "uncertain": "1", "fault": "1", "late": "1"}
    classes = dict(re.findall(r"<tr><th>(\w+)</th><td>(\d+)</td></tr>", page.split('id="defect-classes">')[1].split("</table>")[0]))
    assert classes == {"chip": "2", "crack": "1"}
    assert "11 items inspected; counts balance" in page
    assert page.index("Audit trail intact") < page.index("Totals")
    assert "ab" * 32 in page and "&lt;because&gt;" in page and "<because>" not in page
    assert page.count("data:image/jpeg;base64,") == 3  # thumbnails for the three exceptions with images

    rows = read_csv(csv_path)
    assert [int(r["sequence"]) for r in rows] == EXCEPTIONS
    by_seq = {int(r["sequence"]): r for r in rows}
    assert by_seq[6]["late"] == "yes" and by_seq[6]["verdict"] == "pass"
    assert by_seq[8]["defect_class"] == "crack" and by_seq[8]["defect_class_score"] == "0.7000"
    assert by_seq[9]["disposition"].startswith("pass by qa1 at ") and by_seq[9]["disposition"].endswith("dust, not a chip")
    assert by_seq[10]["image_path"] == "" and by_seq[10]["defect_class_score"] == ""
    for seq in (7, 8, 9):
        image = (out / by_seq[seq]["image_path"]).resolve()
        assert image.is_file() and image.stem == by_seq[seq]["image_sha256"]


def test_report_shows_a_broken_audit_trail_first(archive_root: Path, tmp_path: Path) -> None:
    db = sqlite3.connect(archive_root / "index.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("UPDATE records SET verdict='pass' WHERE sequence=7 AND lot='L1'")
    db.close()
    html_path, _ = write_lot_report(archive_root, "L1", tmp_path / "out")
    page = html_path.read_text(encoding="utf-8")
    assert "Audit trail BROKEN: record 8 (lot L1, sequence 7): hash does not match its contents (edited)" in page
    assert page.index("BROKEN") < page.index("Totals")


def test_unknown_lot_lists_the_lots_that_exist(archive_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="lot 'L9' is not in the archive .*; lots there: L1, L2"):
        write_lot_report(archive_root, "L9", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lot_name_is_made_safe_for_a_file_name_and_never_shared(tmp_path: Path) -> None:
    root = tmp_path / "arch"
    with Archive.open(root) as archive:
        archive.append(make_record("2026/11 A", 0, "pass", None, False, None))
        archive.append(make_record("2026_11_A", 0, "reject", "chipped", False, None))
    html_path, csv_path = write_lot_report(root, "2026/11 A", tmp_path / "out")
    assert html_path.name.startswith("lot_2026_11_A-") and html_path.suffix == ".html" and html_path.parent == tmp_path / "out"
    assert read_csv(csv_path) == []
    # The lot whose name is already safe keeps it, and its report does not overwrite the other's.
    other_html, other_csv = write_lot_report(root, "2026_11_A", tmp_path / "out")
    assert other_html.name == "lot_2026_11_A.html" and html_path.is_file()
    assert len(read_csv(other_csv)) == 1


def test_strict_report_of_a_broken_trail_is_written_and_raised(archive_root: Path, tmp_path: Path) -> None:
    from station.archive.errors import AuditVerificationError

    db = sqlite3.connect(archive_root / "index.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("UPDATE records SET verdict='pass' WHERE sequence=7 AND lot='L1'")
    db.close()
    with pytest.raises(AuditVerificationError, match="audit trail check failed: record 8"):
        write_lot_report(archive_root, "L1", tmp_path / "out", strict=True)
    assert "Audit trail BROKEN" in (tmp_path / "out" / "lot_L1.html").read_text(encoding="utf-8")
