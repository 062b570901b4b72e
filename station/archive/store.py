"""The archive on disk: an append-only, hash-chained SQLite index plus lossless PNGs named by their SHA-256.

Layout under the archive root:
    index.sqlite                 tables `records`, `dispositions` and `signatures` (WAL, synchronous=FULL)
    images/<sha[:2]>/<sha>.png   one file per distinct image, named by the SHA-256 of its PNG bytes
    chain_head                   {"entry_id": N, "record_hash": "..."} of the last committed entry

Records and dispositions form ONE chain ordered by a global `entry_id` (shared by both tables), so
the order of a human's disposition relative to the line's records is itself protected.

An Archive holds one SQLite connection and is not thread-safe: the writer thread owns its own,
readers open their own (sqlite3's check_same_thread enforces this).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from inspection.file_manifest import sha256_bytes
from inspection.image_io import encode_png
from station.archive.errors import ArchiveError, ChainHeadError
from station.archive.signatures import SIGNATURE_COLUMNS, LotDigest, LotSignature, signature_row
from station.archive.records import (
    DISPOSITION_COLUMNS, GENESIS_HASH, RECORD_COLUMNS, VERDICTS, Disposition, ItemRecord, chain_hash,
    check_record, check_utc, check_verdict, disposition_row, record_row, scores_from_json, utc_now_iso,
)  # fmt: skip

INDEX_NAME = "index.sqlite"
HEAD_NAME = "chain_head"
IMAGES_DIR = "images"
SCHEMA_VERSION = 1
TABLES = {
    "record": ("records", RECORD_COLUMNS),
    "disposition": ("dispositions", DISPOSITION_COLUMNS),
    # Lot sign-offs (signatures.py); archives written before it have no such table until opened for writing.
    "signature": ("signatures", SIGNATURE_COLUMNS),
}
_SHA_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def _schema_sql() -> str:
    parts = []
    for table, columns in TABLES.values():
        cols = ", ".join(columns)
        parts.append(
            f"CREATE TABLE IF NOT EXISTS {table} (entry_id INTEGER PRIMARY KEY, {cols}, prev_hash TEXT NOT NULL, record_hash TEXT NOT NULL);"
        )
        # Triggers stop an accidental edit through any SQLite client; a deliberate one is caught by the chain.
        for action in ("UPDATE", "DELETE"):
            parts.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: {action} is not allowed'); END;"
            )
    parts.append("CREATE UNIQUE INDEX IF NOT EXISTS records_item ON records(lot, station, sequence);")
    parts.append("CREATE INDEX IF NOT EXISTS dispositions_item ON dispositions(lot, station, sequence);")
    return "\n".join(parts)


class Archive:
    def __init__(self, root: Path, connection: sqlite3.Connection, png_compression: str = "fast") -> None:
        self.root = root
        self._db = connection
        self.png_compression = png_compression
        self._touched_dirs: set[Path] = set()

    @classmethod
    def open(cls, root: Path, create: bool = True, png_compression: str = "fast") -> "Archive":
        root = Path(root)
        index = root / INDEX_NAME
        if create:
            _prepare_root(root)
        elif not index.is_file():
            raise ArchiveError(f"no archive at {root}: {index} is missing. Check the path (the station's archive root).")
        try:
            db = sqlite3.connect(index, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if create:
                db.executescript(f"BEGIN IMMEDIATE; {_schema_sql()} COMMIT;")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if create and version == 0:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open archive index {index}: {exc}. Check the file and that the folder is writable.") from None
        if version > SCHEMA_VERSION:
            db.close()
            raise ArchiveError(f"{index} has schema version {version}; this tool reads up to {SCHEMA_VERSION}. Upgrade the tool.")
        archive = cls(root, db, png_compression)
        if create:
            try:
                archive._check_head_file()
            except BaseException:
                db.close()
                raise
        return archive

    def _check_head_file(self) -> None:
        """Refuse to write to an archive whose chain_head was deleted or changed: the next append would
        rewrite the file and erase that evidence. The index may be ahead of the file (a crash between a
        commit and the head write, which `audit verify` accepts), never behind it or different."""
        path = self.root / HEAD_NAME
        fix = (f"Do not append to it: keep it as evidence (`inspection audit verify {self.root}`), "
               "and write to a new archive folder.")
        try:
            head_id, head_hash = read_head_file(path)
        except FileNotFoundError:
            entries, _ = self.head()
            if entries:
                raise ArchiveError(f"{path} is missing while {self.root / INDEX_NAME} holds {entries} entries "
                                   f"(deleted?). {fix}") from None
            self._write_head(0, GENESIS_HASH)  # so a missing head file later means it was deleted
            return
        except PermissionError:
            raise ArchiveError(f"{path} cannot be read: permission denied. Run as the archive's owner or fix its permissions.") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise ArchiveError(f"{path} cannot be read (edited or damaged). {fix}") from None
        if head_id == 0 and head_hash == GENESIS_HASH:
            return
        row = self._db.execute(f"SELECT record_hash FROM ({self._chain_sql()}) WHERE entry_id=?", (head_id,)).fetchone()
        if row is None or row[0] != head_hash:
            problem = "is not in the index (deleted?)" if row is None else "does not match the index (rewritten?)"
            raise ArchiveError(f"entry {head_id} named by {path} {problem}. {fix}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing -------------------------------------------------------------------------------

    def append(self, record: ItemRecord) -> str:
        """Archive one record (image first, then the row); returns its record hash."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[ItemRecord]) -> list[str]:
        """Archive records in one transaction (all or none); returns their record hashes in order."""
        for record in records:
            check_record(record)
        rows = [record_row(record, self._store_image(record)) for record in records]
        self._fsync_touched_dirs()
        return self._insert([("record", row) for row in rows], self._check_sequence)

    def append_disposition(
        self, lot: str, sequence: int, user: str, old_verdict: str, new_verdict: str, reason: str,
        new_defect_class: str | None = None, signature_meaning: str | None = None,
        station: str | None = None, utc: str | None = None,
    ) -> str:  # fmt: skip
        """Record a person's decision on an archived item; old_verdict must be its current verdict."""
        what = f"disposition of lot {lot!r} sequence {sequence}"
        if not user or not reason:
            raise ArchiveError(f"{what}: user and reason are required (who and why, ALCOA+).")
        check_verdict(old_verdict, f"{what}: old_verdict")
        check_verdict(new_verdict, f"{what}: new_verdict")
        utc = utc or utc_now_iso()
        check_utc(utc, f"{what}: utc")

        def check(db: sqlite3.Connection, kind: str, row: dict[str, Any]) -> None:
            row["station"] = self._item_station(lot, sequence, station)
            current = self._current_verdict(lot, row["station"], sequence)
            if current != old_verdict:
                raise ArchiveError(f"{what}: old_verdict is {old_verdict!r} but the item's current verdict is {current!r}; reload and review again.")

        disposition = Disposition(lot, station or "", int(sequence), user, utc, str(old_verdict), str(new_verdict), new_defect_class, reason, signature_meaning)
        return self._insert([("disposition", disposition_row(disposition))], check)[0]

    def append_lot_signature(self, lot: str, user: str, full_name: str, meaning: str, utc: str | None = None) -> str:
        """Sign a lot: bind (user, name, time, meaning) to the hashes of all its entries so far; returns the entry hash.

        Authenticating the signer (password re-entry) is the caller's job; this records the signature."""
        what = f"signature of lot {lot!r}"
        if not user or not full_name or not meaning:
            raise ArchiveError(f"{what}: user, full name and meaning are required (21 CFR 11.50).")
        utc = utc or utc_now_iso()
        check_utc(utc, f"{what}: utc")

        def bind(db: sqlite3.Connection, kind: str, row: dict[str, Any]) -> None:
            # Inside the write lock, so no entry of the lot can slip in between digest and signature.
            digest = LotDigest()
            for (entry_hash,) in db.execute(
                "SELECT record_hash FROM (SELECT entry_id, record_hash FROM records WHERE lot=? "
                "UNION ALL SELECT entry_id, record_hash FROM dispositions WHERE lot=?) ORDER BY entry_id", (lot, lot),
            ):
                digest.add(entry_hash)
            if digest.entries == 0:
                raise ArchiveError(f"{what}: the lot has no records in {self.root}. Check the lot name.")
            row["lot_entries"], row["lot_digest"] = digest.entries, digest.hexdigest()

        signature = LotSignature(lot, user, full_name, utc, meaning, 0, "")
        return self._insert([("signature", signature_row(signature))], bind)[0]

    def _store_image(self, record: ItemRecord) -> str | None:
        if record.image is None:
            return None
        png = encode_png(record.image, self.png_compression)  # runs in the caller's thread: the writer's, never the hot path
        sha = sha256_bytes(png)
        path = self.image_path(sha)
        if path.exists():
            return sha  # content-addressed: the same bytes are already stored
        try:
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                self._touched_dirs.add(path.parent.parent)
            _write_file_durably(path, png)
            self._touched_dirs.add(path.parent)
        except OSError as exc:
            raise ArchiveError(
                f"cannot write image {path}: disk full or not writable ({exc.strerror or exc}). "
                f"Free space on the archive volume or fix permissions of {self.root}; the record was not archived."
            ) from exc
        return sha

    def _fsync_touched_dirs(self) -> None:
        # The renames must be durable before the rows that point at the images are committed.
        touched, self._touched_dirs = self._touched_dirs, set()
        for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
            try:
                _fsync_dir(directory)
            except OSError as exc:
                raise ArchiveError(f"cannot sync {directory}: disk full or not writable ({exc.strerror or exc}); nothing was archived.") from exc

    def _insert(self, entries: list[tuple[str, dict[str, Any]]], check: Any) -> list[str]:
        """Chain and insert entries in one IMMEDIATE transaction (serialises writers across processes)."""
        db = self._db
        hashes: list[str] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            entry_id, prev_hash = self.head()  # read inside the lock: another process may have appended
            for kind, row in entries:
                check(db, kind, row)
                entry_id += 1
                record_hash = chain_hash(prev_hash, kind, row)
                table, columns = TABLES[kind]
                placeholders = ", ".join("?" * (len(columns) + 3))
                db.execute(
                    f"INSERT INTO {table} (entry_id, {', '.join(columns)}, prev_hash, record_hash) VALUES ({placeholders})",
                    (entry_id, *(row[c] for c in columns), prev_hash, record_hash),
                )
                hashes.append(record_hash)
                prev_hash = record_hash
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.rollback()
            if isinstance(exc, sqlite3.IntegrityError):
                raise ArchiveError(
                    f"cannot archive into {self.root / INDEX_NAME}: {exc}. An item was archived twice; fix the station's sequence numbering."
                ) from None
            if isinstance(exc, sqlite3.Error):
                raise ArchiveError(
                    f"cannot write {self.root / INDEX_NAME}: disk full or not writable ({exc}). Free space or fix permissions; nothing was archived."
                ) from exc
            raise
        try:
            self._write_head(entry_id, prev_hash)
        except OSError as exc:
            raise ChainHeadError(
                f"entries were archived but {self.root / HEAD_NAME} could not be written: disk full or not writable ({exc.strerror or exc})."
            ) from exc
        return hashes

    def _check_sequence(self, db: sqlite3.Connection, kind: str, row: dict[str, Any]) -> None:
        # 100% inspection: one outcome per item, numbered strictly upwards; a regression is a station bug.
        last = self.last_sequence(row["lot"], row["station"])
        if last is not None and row["sequence"] <= last:
            raise ArchiveError(
                f"record lot {row['lot']!r} station {row['station']!r} sequence {row['sequence']} is not after the last archived "
                f"sequence {last}; sequence numbers must increase (resume from last_sequence() + 1)."
            )

    def _item_station(self, lot: str, sequence: int, station: str | None) -> str:
        sql, args = "SELECT station FROM records WHERE lot=? AND sequence=?", [lot, int(sequence)]
        if station is not None:
            sql, args = sql + " AND station=?", args + [station]
        found = [r[0] for r in self._db.execute(sql, args)]
        if len(found) != 1:
            problem = "is not in the archive" if not found else f"exists at several stations {found}; pass station="
            raise ArchiveError(f"item lot {lot!r} sequence {sequence} {problem}. Check the lot and sequence.")
        return found[0]

    def _current_verdict(self, lot: str, station: str, sequence: int) -> str:
        latest = self._db.execute(
            "SELECT new_verdict FROM dispositions WHERE lot=? AND station=? AND sequence=? ORDER BY entry_id DESC LIMIT 1",
            (lot, station, int(sequence)),
        ).fetchone()
        if latest:
            return latest[0]
        return self._db.execute(
            "SELECT verdict FROM records WHERE lot=? AND station=? AND sequence=?", (lot, station, int(sequence))
        ).fetchone()[0]

    def _write_head(self, entry_id: int, record_hash: str) -> None:
        text = json.dumps({"entry_id": entry_id, "record_hash": record_hash}) + "\n"
        _write_file_durably(self.root / HEAD_NAME, text.encode("ascii"))

    # ---- reading -------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(entry_id, record_hash) of the last entry in the chain; (0, 64 zeros) when empty."""
        row = self._db.execute(f"SELECT entry_id, record_hash FROM ({self._chain_sql()}) ORDER BY entry_id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def _chain_sql(self) -> str:
        """Every entry of the chain as (entry_id, record_hash), whichever table holds it."""
        return " UNION ALL ".join(f"SELECT entry_id, record_hash FROM {table}" for table in chain_tables(self._db))

    def records(self, lot: str | None = None) -> Iterator[dict[str, Any]]:
        """Archived records in chain order, as dicts of the ItemRecord fields plus entry_id, image_sha256 and hashes."""
        for row in self._select("records", lot):
            row["scores"] = scores_from_json(row.pop("scores_json"))
            row["class_names"] = tuple(json.loads(row.pop("class_names_json")))
            row["late"] = bool(row["late"])
            yield row

    def dispositions(self, lot: str | None = None) -> Iterator[dict[str, Any]]:
        yield from self._select("dispositions", lot)

    def signatures(self, lot: str | None = None) -> Iterator[dict[str, Any]]:
        if "signatures" in chain_tables(self._db):
            yield from self._select("signatures", lot)

    def _select(self, table: str, lot: str | None) -> Iterator[dict[str, Any]]:
        where, args = ("WHERE lot=?", (lot,)) if lot is not None else ("", ())
        cursor = self._db.execute(f"SELECT * FROM {table} {where} ORDER BY entry_id", args)
        names = [d[0] for d in cursor.description]
        for values in cursor:
            yield dict(zip(names, values))

    def lots(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT lot FROM records ORDER BY lot")]

    def last_sequence(self, lot: str, station: str) -> int | None:
        return self._db.execute("SELECT MAX(sequence) FROM records WHERE lot=? AND station=?", (lot, station)).fetchone()[0]

    def counts(self, lot: str) -> dict[str, int]:
        """Items per verdict as the station decided them (dispositions do not change these counts)."""
        counts = dict.fromkeys(VERDICTS, 0)
        for verdict, n in self._db.execute("SELECT verdict, COUNT(*) FROM records WHERE lot=? GROUP BY verdict", (lot,)):
            counts[verdict] = n
        return counts

    def image_path(self, sha: str) -> Path:
        if not isinstance(sha, str) or not _SHA_PATTERN.match(sha):
            raise ArchiveError(f"{sha!r} is not an image SHA-256 (64 lowercase hex digits).")
        return self.root / IMAGES_DIR / sha[:2] / f"{sha}.png"


def read_head_file(path: Path) -> tuple[int, str]:
    """(entry_id, record_hash) the chain_head file names. FileNotFoundError when it is missing; OSError,
    ValueError, KeyError or TypeError when it cannot be read or parsed."""
    head = json.loads(Path(path).read_text(encoding="ascii"))
    return int(head["entry_id"]), str(head["record_hash"])


def chain_tables(db: sqlite3.Connection) -> list[str]:
    """The chain's tables present in this index (an archive from before lot signatures has two)."""
    present = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return [table for table, _ in TABLES.values() if table in present or table != "signatures"]


def _prepare_root(root: Path) -> None:
    fix = "Set the archive root to a writable folder on a local disk, or fix its permissions."
    try:
        (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        probe = root / f".write_probe.{os.getpid()}.{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ArchiveError(f"archive folder {root} cannot be created or written ({exc.strerror or exc}). {fix}") from None


def _write_file_durably(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync, rename: a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the original error is the one to report
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
