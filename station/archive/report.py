"""The lot (batch) report for the electronic batch record: totals, and the exceptions only.

Review by exception: every reject, uncertain, fault and late item is listed with its image; passes
are only counted. The audit-trail check runs first and its result heads the report, together with
the chain head hash, which a signed batch record can quote as an anchor against later truncation.
"""

from __future__ import annotations

import base64
import csv
import html
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from inspection.file_manifest import sha256_bytes
from station.archive.errors import ArchiveError, AuditVerificationError
from station.archive.records import VERDICTS, utc_now_iso
from station.archive.store import Archive
from station.archive.verify import VerifyResult, verify_archive

MAX_THUMBNAILS = 500  # beyond this the HTML links the full images only, to stay a reasonable size
THUMBNAIL_PX = 96
CSV_COLUMNS = (
    "station", "sequence", "captured_utc", "decided_utc", "verdict", "defect_class", "defect_class_score",
    "late", "reason", "image_sha256", "image_path", "disposition",
)  # fmt: skip


@dataclass(slots=True)
class LotSummary:
    lot: str
    items: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    defect_classes: Counter[str] = field(default_factory=Counter)
    late: int = 0
    bundles: Counter[str] = field(default_factory=Counter)
    thresholds_versions: Counter[str] = field(default_factory=Counter)
    sequences: dict[str, list[int]] = field(default_factory=dict)  # station -> [first, last, count]
    first_capture_utc: str | None = None
    last_capture_utc: str | None = None
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    def sequence_gaps(self, station: str) -> int:
        first, last, count = self.sequences[station]
        return (last - first + 1) - count


def report_stem(lot: str) -> str:
    """lot_<lot> with unsafe characters replaced; then a short hash of the lot, so two lots that differ only
    in those characters ("A/1" and "A_1") never share, and overwrite, one report."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", lot)
    return f"lot_{safe}" if safe == lot else f"lot_{safe}-{sha256_bytes(lot.encode('utf-8'))[:8]}"


def write_lot_report(root: Path, lot: str, out_dir: Path, strict: bool = False) -> list[Path]:
    """Write lot_<lot>.html and lot_<lot>.csv into out_dir; returns their paths. A broken audit trail is
    shown first in the report; with strict, it is also raised (exit 1), so a script cannot pass it by."""
    root, out_dir = Path(root), Path(out_dir)
    with Archive.open(root, create=False) as archive:
        lots = archive.lots()
        if lot not in lots:
            raise ArchiveError(f"lot {lot!r} is not in the archive at {root}; lots there: {', '.join(lots) or '(none)'}.")
        summary = summarize_lot(archive, lot, out_dir)
    verify = verify_archive(root)
    name = report_stem(lot)
    html_path, csv_path = out_dir / f"{name}.html", out_dir / f"{name}.csv"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        html_path.write_text(_render_html(summary, verify, root), encoding="utf-8")
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(summary.exceptions)
    except OSError as exc:
        raise ArchiveError(f"cannot write the lot report into {out_dir}: {exc.strerror or exc}. Choose a writable folder.") from None
    if strict and not verify.ok:
        raise AuditVerificationError(f"{html_path} is written and shows it first: the audit trail check failed: {verify.first_bad}. "
                                     "Quarantine the archive, open a deviation, and do not release the lot on this record.")
    return [html_path, csv_path]


def summarize_lot(archive: Archive, lot: str, out_dir: Path) -> LotSummary:
    """Totals over every record of the lot, plus one row per exception (image paths relative to out_dir)."""
    summary = LotSummary(lot)
    latest = {(d["station"], d["sequence"]): d for d in archive.dispositions(lot)}  # chain order: last wins
    for record in archive.records(lot):
        summary.items += 1
        summary.verdicts[record["verdict"]] = summary.verdicts.get(record["verdict"], 0) + 1
        if record["defect_class"] is not None:
            summary.defect_classes[record["defect_class"]] += 1
        summary.late += record["late"]
        summary.bundles[record["bundle_hash"]] += 1
        summary.thresholds_versions[record["thresholds_version"]] += 1
        span = summary.sequences.setdefault(record["station"], [record["sequence"], record["sequence"], 0])
        span[0], span[1], span[2] = min(span[0], record["sequence"]), max(span[1], record["sequence"]), span[2] + 1
        captured = record["captured_utc"]
        summary.first_capture_utc = min(summary.first_capture_utc or captured, captured)
        summary.last_capture_utc = max(summary.last_capture_utc or captured, captured)
        if record["verdict"] != "pass" or record["late"]:
            summary.exceptions.append(_exception_row(archive, record, latest.get((record["station"], record["sequence"])), out_dir))
    return summary


def _exception_row(archive: Archive, record: dict[str, Any], disposition: dict[str, Any] | None, out_dir: Path) -> dict[str, Any]:
    # The record holds class probabilities but not the bundle's "good" classes, so the score shown is
    # P(defect class); the decision's own defect score is quoted in the reason.
    score = ""
    if record["defect_class"] in record["class_names"] and record["scores"]:
        score = f"{record['scores'][record['class_names'].index(record['defect_class'])]:.4f}"
    sha = record["image_sha256"]
    image = archive.image_path(sha) if sha else None
    return {
        **{k: record[k] for k in ("station", "sequence", "captured_utc", "decided_utc", "verdict", "reason")},
        "defect_class": record["defect_class"] or "",
        "defect_class_score": score,
        "late": "yes" if record["late"] else "",
        "image_sha256": sha or "",
        "image_path": Path(os.path.relpath(image.absolute(), out_dir.absolute())).as_posix() if image else "",
        "_image_abs": image,
        "disposition": (
            f"{disposition['new_verdict']} by {disposition['user']} at {disposition['utc']}: {disposition['reason']}" if disposition else ""
        ),
    }


def _thumbnail_uri(path: Path | None) -> str | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path is not None and path.is_file() else None
    if image is None:
        return None
    scale = THUMBNAIL_PX / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


_CSS = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}th{background:#eee}
.ok{color:#060;font-weight:bold}.bad{color:#b00;font-weight:bold}code{font-size:90%}img{display:block}"""


def _render_html(summary: LotSummary, verify: VerifyResult, root: Path) -> str:
    e = html.escape
    if verify.ok:
        audit = '<p class="ok">Audit trail intact</p>'
    else:
        audit = f'<p class="bad">Audit trail BROKEN: {e(str(verify.first_bad))} ({verify.problems} problem(s))</p>'
    audit += (
        f"<p>{verify.records_checked} records, {verify.dispositions_checked} dispositions, {verify.images_checked} images checked; "
        f"{verify.orphan_images} orphan images. Chain head: entry {verify.head_entry_id}, <code>{verify.head_hash}</code></p>"
    )
    balanced = summary.items == sum(summary.verdicts.values())
    totals = "".join(f"<tr><th>{e(v)}</th><td>{n}</td></tr>" for v, n in summary.verdicts.items())
    totals += f"<tr><th>late</th><td>{summary.late}</td></tr>"
    classes = "".join(f"<tr><th>{e(c)}</th><td>{n}</td></tr>" for c, n in sorted(summary.defect_classes.items())) or "<tr><td>none</td></tr>"
    bundles = "".join(f"<tr><td><code>{e(b)}</code></td><td>{n}</td></tr>" for b, n in summary.bundles.items())
    versions = ", ".join(f"{e(v)} ({n})" for v, n in summary.thresholds_versions.items())
    stations = "".join(
        f"<tr><td>{e(s)}</td><td>{first}</td><td>{last}</td><td>{count}</td><td>{summary.sequence_gaps(s)}</td></tr>"
        for s, (first, last, count) in summary.sequences.items()
    )
    rows = []
    for i, row in enumerate(summary.exceptions):
        thumb = _thumbnail_uri(row["_image_abs"]) if i < MAX_THUMBNAILS else None
        link = e(row["image_path"])
        picture = (f'<a href="{link}"><img src="{thumb}" alt="item {row["sequence"]}"></a>' if thumb else "") + (
            f'<a href="{link}">full image</a>' if link else "no image"
        )
        cells = [row["station"], row["sequence"], row["captured_utc"], row["verdict"], row["defect_class"], row["defect_class_score"], row["late"], row["reason"], row["disposition"]]
        rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + f"<td>{picture}</td></tr>")
    heads = "".join(f"<th>{h}</th>" for h in ("station", "sequence", "captured (UTC)", "verdict", "defect class", "P(defect class)", "late", "reason", "disposition", "image"))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Lot {e(summary.lot)}</title><style>{_CSS}</style></head><body>
<h1>Lot {e(summary.lot)}: inspection report</h1>
<p>Archive <code>{e(str(root))}</code>; report generated {utc_now_iso()}.</p>
<h2>Audit trail</h2>{audit}
<h2>Totals</h2><p>{summary.items} items inspected; counts {"balance" if balanced else "DO NOT balance"}.
First capture {e(str(summary.first_capture_utc))}, last capture {e(str(summary.last_capture_utc))}.</p>
<table id="totals">{totals}</table>
<h3>Defect classes</h3><table id="defect-classes">{classes}</table>
<h3>Model bundles</h3><table id="bundles"><tr><th>bundle hash</th><th>items</th></tr>{bundles}</table>
<p>Thresholds versions: {versions}</p>
<h3>Stations</h3><table id="stations"><tr><th>station</th><th>first sequence</th><th>last sequence</th><th>items</th><th>sequence gaps</th></tr>{stations}</table>
<h2>Exceptions ({len(summary.exceptions)})</h2>
<table id="exceptions"><tr>{heads}</tr>{"".join(rows)}</table>
</body></html>
"""
