"""`inspection audit verify`: recompute the hash chain and every image hash from what is on disk.

Reads the database only (query_only) and never repairs anything: the evidence stays as found.
What is and is not detected is listed in docs/audit_trail.md.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspection.file_manifest import sha256_file
from station.archive.errors import ArchiveError, AuditVerificationError
from station.archive.records import GENESIS_HASH, chain_hash
from station.archive.signatures import LotDigest
from station.archive.store import HEAD_NAME, IMAGES_DIR, INDEX_NAME, TABLES, chain_tables, read_head_file

_SHA_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records_checked: int
    dispositions_checked: int
    images_checked: int
    first_bad: str | None  # the first problem in chain order, e.g. "record 57 (lot L1, sequence 57): ... (edited)"
    orphan_images: int  # PNGs no record points at (a crash between image and row): harmless, reported; 0 unless images are checked
    problems: int = 0
    head_entry_id: int = 0  # the last entry of the chain as found: quote it in the batch record as an anchor
    head_hash: str = GENESIS_HASH
    signatures_checked: int = 0  # lot sign-offs (signatures.py); each one's lot digest is recomputed


@dataclass(slots=True)
class _Tally:
    counts: dict[str, int]
    problems: int = 0
    first_bad: str | None = None

    def bad(self, message: str) -> None:
        self.problems += 1
        if self.first_bad is None:
            self.first_bad = message


def verify_archive(root: Path, check_images: bool = True, anchors: Sequence[tuple[int, str]] = ()) -> VerifyResult:
    """Check the whole archive. anchors: (entry_id, record_hash) pairs quoted earlier outside the archive
    (a signed batch record); each must still be in the chain, which exposes a truncated or re-hashed tail."""
    root = Path(root)
    index = root / INDEX_NAME
    if not index.is_file():
        raise ArchiveError(f"no archive at {root}: {index} is missing. Check the path (the station's archive root).")
    db = sqlite3.connect(index, timeout=10.0, isolation_level=None)
    try:
        db.execute("PRAGMA query_only=ON")
        # One read snapshot for every query; the head file is read before it, so a station appending
        # meanwhile can only put the database ahead of the head file (accepted), never behind.
        db.execute("BEGIN")
        return _verify(db, root, check_images, dict(anchors))
    except sqlite3.DatabaseError as exc:
        message = f"{index} cannot be read as an archive index ({exc}): the database was damaged or its tables removed"
        return VerifyResult(False, 0, 0, 0, message, 0, problems=1)
    finally:
        db.close()


def raise_if_bad(result: VerifyResult) -> None:
    if not result.ok:
        raise AuditVerificationError(
            f"audit trail check failed: {result.first_bad} ({result.problems} problem(s) in all). "
            "Quarantine the archive, open a deviation, and do not release the lot on this record."
        )


def _verify(db: sqlite3.Connection, root: Path, check_images: bool, anchors: dict[int, str]) -> VerifyResult:
    tally = _Tally(counts={"record": 0, "disposition": 0, "signature": 0, "image": 0})
    lot_digests: dict[Any, LotDigest] = {}
    referenced: set[str] = set()
    expected_prev, last_id = GENESIS_HASH, 0
    head_id, head_hash = _read_head_file(root / HEAD_NAME, tally)
    head_seen_hash: str | None = GENESIS_HASH if head_id == 0 else None
    for kind, entry_id, content, prev_hash, stored_hash in _entries(db):
        tally.counts[kind] += 1
        where = f"lot {content.get('lot')}" + (f", sequence {content.get('sequence')}" if kind != "signature" else "")
        label = f"{kind} {entry_id} ({where})"
        if _content_hash(prev_hash, kind, content) != stored_hash:
            tally.bad(f"{label}: hash does not match its contents (edited)")
        elif prev_hash != expected_prev:
            # Diagnosis scans the table, so only the first problem gets one (a mass reorder stays linear).
            why = _diagnose_link(db, prev_hash, entry_id, last_id) if tally.first_bad is None else "chain link broken"
            tally.bad(f"{label}: {why}")
        if kind == "signature":
            _check_signature(content, lot_digests.get(content.get("lot"), LotDigest()), label, tally)
        else:
            lot_digests.setdefault(content["lot"], LotDigest()).add(str(stored_hash))
        if kind == "record" and content["image_sha256"] is not None:
            referenced.add(str(content["image_sha256"]))
            if check_images:
                tally.counts["image"] += 1
                _check_image(root, content["image_sha256"], label, tally)
        if entry_id == head_id:
            head_seen_hash = stored_hash
        if entry_id in anchors and anchors.pop(entry_id) != stored_hash:
            tally.bad(f"{label}: does not match the anchor hash quoted outside the archive (rewritten)")
        # Resynchronise on what is stored so that one deletion is reported once, not for every later entry.
        expected_prev, last_id = stored_hash, entry_id
    if head_id is not None:
        if head_seen_hash is None and last_id < head_id:
            tally.bad(
                f"the chain ends at entry {last_id} but {HEAD_NAME} records entry {head_id}: "
                f"the last {head_id - last_id} entries were deleted (tail truncation)"
            )
        elif head_seen_hash is None:
            tally.bad(f"entry {head_id} named by {HEAD_NAME} is missing from the chain (deleted)")
        elif head_seen_hash != head_hash:
            tally.bad(f"entry {head_id} does not match the hash in {HEAD_NAME} (rewritten)")
    elif last_id > 0 and not (root / HEAD_NAME).exists():
        tally.bad(f"{root / HEAD_NAME} is missing (deleted); a deleted tail cannot be ruled out")
    for entry_id in sorted(anchors):  # anchors never reached: the chain no longer holds them
        tally.bad(f"anchored entry {entry_id} is not in the chain (ends at entry {last_id}): deleted or truncated")
    return VerifyResult(
        ok=tally.problems == 0,
        records_checked=tally.counts["record"],
        dispositions_checked=tally.counts["disposition"],
        images_checked=tally.counts["image"],
        first_bad=tally.first_bad,
        orphan_images=_count_orphans(root / IMAGES_DIR, referenced) if check_images else 0,  # a walk of every image file
        problems=tally.problems,
        head_entry_id=last_id,
        head_hash=expected_prev,
        signatures_checked=tally.counts["signature"],
    )


def _entries(db: sqlite3.Connection) -> Iterator[tuple[str, int, dict[str, Any], Any, Any]]:
    """Records, dispositions and lot signatures merged into the one chain order (global entry_id)."""
    present = chain_tables(db)

    def rows(kind: str) -> Iterator[tuple[str, int, dict[str, Any], Any, Any]]:
        table, columns = TABLES[kind]
        cursor = db.execute(f"SELECT entry_id, {', '.join(columns)}, prev_hash, record_hash FROM {table} ORDER BY entry_id")
        for row in cursor:
            yield kind, row[0], dict(zip(columns, row[1:-2])), row[-2], row[-1]

    return heapq.merge(*(rows(kind) for kind, (table, _) in TABLES.items() if table in present), key=lambda entry: entry[1])


def _content_hash(prev_hash: Any, kind: str, content: dict[str, Any]) -> str | None:
    try:
        return chain_hash(prev_hash, kind, content)
    except (TypeError, ValueError, UnicodeEncodeError):
        return None  # a value of a type the archive never writes (a BLOB, a float): edited


def _diagnose_link(db: sqlite3.Connection, prev_hash: Any, entry_id: int, last_id: int) -> str:
    """Name what broke the link, by finding which entry (if any) this one's prev_hash points at."""
    target = None
    for table in chain_tables(db):
        row = db.execute(f"SELECT entry_id FROM {table} WHERE record_hash=? LIMIT 1", (prev_hash,)).fetchone()
        target = row[0] if row else target
    if target is None:
        if entry_id > last_id + 1:
            return f"entries {last_id + 1}..{entry_id - 1} before it are missing (deleted)"
        return f"the entry it links to is missing; an entry between {last_id} and {entry_id} was deleted"
    if target < last_id:
        return f"it links to entry {target}, so entries {target + 1}..{last_id} before it were inserted"
    return f"it links to entry {target}, which comes after it (entries reordered)"


def _check_signature(content: dict[str, Any], digest: LotDigest, label: str, tally: _Tally) -> None:
    if (content.get("lot_entries"), content.get("lot_digest")) != (digest.entries, digest.hexdigest()):
        tally.bad(
            f"{label}: signed {content.get('lot_entries')} entries of the lot but the chain before it holds {digest.entries} "
            "with other hashes (the signature does not cover these records)"
        )


def _check_image(root: Path, sha: Any, label: str, tally: _Tally) -> None:
    if not isinstance(sha, str) or not _SHA_PATTERN.match(sha):
        tally.bad(f"{label}: image reference {sha!r} is not a SHA-256 (edited)")
        return
    path = root / IMAGES_DIR / sha[:2] / f"{sha}.png"
    if not path.is_file():
        tally.bad(f"{label}: image {path.name} is missing (deleted)")
    elif sha256_file(path) != sha:
        tally.bad(f"{label}: image {path.name} does not match its SHA-256 (edited)")


def _read_head_file(path: Path, tally: _Tally) -> tuple[int | None, str | None]:
    try:
        return read_head_file(path)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError):
        tally.bad(f"{path} cannot be read (edited or damaged)")
        return None, None


def _count_orphans(images: Path, referenced: set[str]) -> int:
    if not images.is_dir():
        return 0
    return sum(1 for p in images.rglob("*") if p.is_file() and not (p.suffix == ".png" and p.stem in referenced))
