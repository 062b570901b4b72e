"""What the archive holds: the per-item record, a human disposition, and how each is hashed into the chain.

Every entry (record or disposition) is stored as plain TEXT/INTEGER columns, and its hash is computed
from exactly those stored values, so `audit verify` recomputes it from the database alone and any
third-party tool can too:

    record_hash = sha256_hex(prev_hash + canonical_json({"kind": kind, <column>: <value>, ...}))

canonical_json = json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True). Scores and
class names are stored (and hashed) as canonical JSON text; non-finite scores are written as the
strings "NaN", "Infinity", "-Infinity" so that the text is standard JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspection.decision import Verdict
from inspection.image_io import is_canonical_image
from station.archive.errors import ArchiveError

GENESIS_HASH = "0" * 64
VERDICTS = tuple(v.value for v in Verdict)
_UTC_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

RECORD_COLUMNS = (
    "lot", "station", "sequence", "captured_utc", "decided_utc", "signalled_utc", "verdict",
    "defect_class", "reason", "scores_json", "class_names_json", "bundle_hash", "thresholds_version",
    "operator", "late", "true_label", "image_sha256",
)  # fmt: skip
DISPOSITION_COLUMNS = (
    "lot", "station", "sequence", "user", "utc", "old_verdict", "new_verdict", "new_defect_class",
    "reason", "signature_meaning",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One inspected item, built by the station; the archive stores it once and never changes it."""

    lot: str
    station: str
    sequence: int  # strictly increasing within a lot+station run
    captured_utc: str  # ISO 8601 UTC with microseconds and 'Z' (see utc_now_iso)
    decided_utc: str
    signalled_utc: str | None
    verdict: str  # "pass" | "reject" | "uncertain" | "fault"
    defect_class: str | None
    reason: str
    scores: tuple[float, ...]  # class probabilities (empty for a fault without scores)
    class_names: tuple[str, ...]
    bundle_hash: str
    thresholds_version: str
    operator: str
    late: bool = False
    true_label: str | None = None  # ground truth when the source knows it (synthetic line)
    image: np.ndarray | None = None  # canonical uint8 HxW or HxWx3 RGB; archived when not None


@dataclass(frozen=True, slots=True)
class Disposition:
    """A person's later decision on one archived item (review by exception)."""

    lot: str
    station: str
    sequence: int
    user: str
    utc: str
    old_verdict: str
    new_verdict: str
    new_defect_class: str | None
    reason: str
    signature_meaning: str | None  # e.g. "approved"; None when not signed electronically


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with microseconds, e.g. 2026-11-26T16:01:02.123456Z (trusted = NTP-synced clock)."""
    now_ns = time.time_ns()
    seconds, rest_ns = divmod(now_ns, 1_000_000_000)
    return _utc_second_iso(seconds) + f".{rest_ns // 1000:06d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second_iso(seconds: int) -> str:
    # Every item is stamped three times; formatting each second once keeps strftime off the capture path.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_hash(prev_hash: str, kind: str, content: dict[str, Any]) -> str:
    text = prev_hash + canonical_json({"kind": kind, **content})
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def scores_to_json(scores: tuple[float, ...]) -> str:
    return canonical_json([_json_float(float(s)) for s in scores])


def scores_from_json(text: str) -> tuple[float, ...]:
    return tuple(_NON_FINITE[s] if isinstance(s, str) else float(s) for s in json.loads(text))


def _json_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def record_row(record: ItemRecord, image_sha256: str | None) -> dict[str, Any]:
    """The stored (and hashed) column values of a record, in RECORD_COLUMNS order."""
    return {
        "lot": record.lot,
        "station": record.station,
        "sequence": int(record.sequence),
        "captured_utc": record.captured_utc,
        "decided_utc": record.decided_utc,
        "signalled_utc": record.signalled_utc,
        "verdict": str(record.verdict),
        "defect_class": record.defect_class,
        "reason": record.reason,
        "scores_json": scores_to_json(record.scores),
        "class_names_json": canonical_json(list(record.class_names)),
        "bundle_hash": record.bundle_hash,
        "thresholds_version": record.thresholds_version,
        "operator": record.operator,
        "late": 1 if record.late else 0,
        "true_label": record.true_label,
        "image_sha256": image_sha256,
    }


def disposition_row(disposition: Disposition) -> dict[str, Any]:
    return {name: getattr(disposition, name) for name in DISPOSITION_COLUMNS}


def check_record(record: ItemRecord) -> None:
    """Refuse a record that would make the audit trail wrong; the message names the field and the fix."""
    where = f"record lot {record.lot!r} station {record.station!r} sequence {record.sequence!r}"
    for name in ("lot", "station", "reason", "bundle_hash", "thresholds_version", "operator"):
        if not isinstance(getattr(record, name), str) or (name in ("lot", "station") and not getattr(record, name)):
            raise ArchiveError(f"{where}: {name} must be a non-empty string; fix the station that builds records.")
    for name in ("lot", "station", "operator"):
        if not getattr(record, name).isprintable():
            raise ArchiveError(f"{where}: {name} holds a control character (newline, tab, ...); names in the audit trail are one printable line.")
    if isinstance(record.sequence, bool) or not isinstance(record.sequence, (int, np.integer)) or record.sequence < 0:
        raise ArchiveError(f"{where}: sequence must be an integer >= 0.")
    check_utc(record.captured_utc, f"{where}: captured_utc")
    check_utc(record.decided_utc, f"{where}: decided_utc")
    if record.signalled_utc is not None:
        check_utc(record.signalled_utc, f"{where}: signalled_utc")
    check_verdict(record.verdict, f"{where}: verdict")
    if record.scores and len(record.scores) != len(record.class_names):
        raise ArchiveError(
            f"{where}: {len(record.scores)} scores for {len(record.class_names)} class names; they must match (or scores be empty)."
        )
    image = record.image
    if image is not None and not is_canonical_image(image):
        shape = getattr(image, "shape", type(image).__name__)
        raise ArchiveError(f"{where}: image {shape} must be a uint8 HxW or HxWx3 array (inspection.image_io canonical form).")


def check_utc(value: object, what: str) -> None:
    if not isinstance(value, str) or not _UTC_PATTERN.match(value):
        raise ArchiveError(f"{what} is {value!r}; expected ISO 8601 UTC like 2026-11-26T16:01:02.123456Z (utc_now_iso()).")


def check_verdict(value: object, what: str) -> None:
    if value not in VERDICTS:
        raise ArchiveError(f"{what} is {value!r}; expected one of {', '.join(VERDICTS)}.")
