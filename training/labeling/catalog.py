"""The dataset as the labeling tool sees it: images, classes and the append-only label history.

One SQLite file in the workspace. `items.label` is the current label, kept for fast filtering; it
only ever changes in the same transaction that appends the change to `label_history` (who, when,
old, new, what kind of action, why), and the history table refuses UPDATE and DELETE, so the
history is the record and the label column its summary. Images are referenced, never copied,
modified or moved: `origin` 'data' is relative to DATA, 'import' relative to the workspace's
imports/ (archive images a reviewer exported).

Images in a top-level DATA/unlabeled/ folder are catalogued without a label.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.archive import utc_now_iso
from training.labeling.errors import LabelingError, WorkspaceError
from training.labeling.workspace import Workspace

UNLABELED_FOLDER = "unlabeled"
ITEM_COLUMNS = ("id", "path", "origin", "sha256", "folder_label", "label", "split", "grp", "width", "height", "channels", "labeled_by")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, origin TEXT NOT NULL, sha256 TEXT NOT NULL, folder_label TEXT,
    label TEXT, split TEXT NOT NULL, grp TEXT NOT NULL, width INTEGER, height INTEGER, channels INTEGER, labeled_by TEXT,
    UNIQUE(origin, path));
CREATE INDEX IF NOT EXISTS items_label ON items(label);
CREATE INDEX IF NOT EXISTS items_split ON items(split);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
CREATE TABLE IF NOT EXISTS classes (name TEXT PRIMARY KEY, position INTEGER NOT NULL, added_by TEXT NOT NULL, added_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS label_history (
    id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, user TEXT NOT NULL,
    utc TEXT NOT NULL, old_label TEXT, new_label TEXT, action TEXT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS history_item ON label_history(item_id);
CREATE TRIGGER IF NOT EXISTS label_history_no_update BEFORE UPDATE ON label_history
    BEGIN SELECT RAISE(ABORT, 'label_history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS label_history_no_delete BEFORE DELETE ON label_history
    BEGIN SELECT RAISE(ABORT, 'label_history is append-only'); END;
CREATE TABLE IF NOT EXISTS predictions (
    sha256 TEXT NOT NULL, bundle_hash TEXT NOT NULL, predicted TEXT NOT NULL, confidence REAL NOT NULL,
    uncertainty REAL NOT NULL, PRIMARY KEY (sha256, bundle_hash));
"""


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    path: str
    origin: str  # "data" or "import"
    sha256: str
    folder_label: str | None
    label: str | None
    split: str
    grp: str
    width: int | None
    height: int | None
    channels: int | None
    labeled_by: str | None


@dataclass(frozen=True, slots=True)
class NewItem:
    """An image to add to the catalog (from the dataset index or a review export)."""

    path: str
    origin: str
    sha256: str
    label: str | None
    split: str
    grp: str
    width: int | None = None
    height: int | None = None
    channels: int | None = None


class Catalog:
    """Thread-safe (one connection behind a lock): Gradio runs event handlers in worker threads."""

    def __init__(self, workspace: Workspace, db: sqlite3.Connection) -> None:
        self.workspace = workspace
        self._db = db
        self._lock = threading.RLock()

    @classmethod
    def open(cls, workspace: Workspace) -> "Catalog":
        try:
            db = sqlite3.connect(workspace.catalog_path, isolation_level=None, check_same_thread=False, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot open {workspace.catalog_path} ({exc}). Check the workspace or pass another --workspace.") from None
        return cls(workspace, db)

    def close(self) -> None:
        self._db.close()

    # ---- reading -----------------------------------------------------------------------------

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def count(self) -> int:
        return self.query("SELECT COUNT(*) FROM items")[0][0]

    def item(self, item_id: int) -> Item:
        rows = self.query(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE id=?", (int(item_id),))
        if not rows:
            raise LabelingError(f"image id {item_id} is not in the catalog. Reload the page.")
        return Item(*rows[0])

    def items(self, item_ids: Iterable[int]) -> list[Item]:
        ids = [int(i) for i in item_ids]
        if not ids:
            return []
        rows = self.query(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE id IN ({', '.join('?' * len(ids))})", ids)
        by_id = {row[0]: Item(*row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def classes(self) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM classes ORDER BY position, name")]

    def history(self, item_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE item_id=?", (int(item_id),)) if item_id is not None else ("", ())
        with self._lock:
            cursor = self._db.execute(f"SELECT * FROM label_history {where} ORDER BY id", args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def file_path(self, item: Item) -> Path:
        """The image file of an item; refuses any stored path that would leave its root (path traversal)."""
        return self.path_of(item.origin, item.path)

    def path_of(self, origin: str, path: str) -> Path:
        root = self.workspace.data_root if origin == "data" else self.workspace.imports_dir
        return safe_join(root, path)

    # ---- writing -----------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem], user: str) -> int:
        """Add images not yet catalogued (by origin and path); their given labels enter the history."""
        added = 0
        with self._lock, self._transaction():
            for new in items:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO items (path, origin, sha256, folder_label, label, split, grp, width, height, channels, labeled_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new.path, new.origin, new.sha256, new.label, new.label, new.split, new.grp, new.width, new.height, new.channels,
                     None if new.origin == "data" else user),
                )  # fmt: skip
                added += cursor.rowcount
                if cursor.rowcount and new.label is not None and new.origin != "data":
                    self._append_history(cursor.lastrowid, new.path, new.sha256, user, None, new.label, "import", None)
        return added

    def add_class(self, name: str, user: str) -> None:
        name = name.strip()
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == UNLABELED_FOLDER or len(name) > 64:
            raise LabelingError(f"class name {name!r} is not valid; use a short folder-safe name (no '/', not starting with '.', not 'unlabeled').")
        with self._lock, self._transaction():
            if self._db.execute("SELECT 1 FROM classes WHERE name=?", (name,)).fetchone():
                raise LabelingError(f"class {name!r} already exists.")
            position = self._db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM classes").fetchone()[0]
            self._db.execute("INSERT INTO classes VALUES (?, ?, ?, ?)", (name, position, user, utc_now_iso()))

    def assign(self, item_ids: Sequence[int], new_label: str, user: str, action: str = "label", reason: str | None = None) -> list[int]:
        """Set the label of items; returns the history ids of the items whose label changed."""
        if new_label not in self.classes():
            raise LabelingError(f"class {new_label!r} does not exist; classes are: {', '.join(self.classes())}. Add it first.")
        changed: list[int] = []
        with self._lock, self._transaction():
            for item in self.items(item_ids):
                if item.label == new_label:
                    continue
                changed.append(self._set_label(item, new_label, user, action, reason))
        return changed

    def undo(self, history_id: int, user: str) -> int:
        """Revert one earlier change by appending the reverse change (history is never rewritten)."""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT item_id, new_label, old_label, user FROM label_history WHERE id=?", (int(history_id),)).fetchone()
            if row is None:
                raise LabelingError(f"label change {history_id} does not exist; nothing to undo.")
            item_id, new_label, old_label, by = row
            item = self.item(item_id)
            if item.label != new_label:
                raise LabelingError(f"{item.path} is now labeled {item.label!r}, changed since; undo refused. Label it again instead.")
            return self._set_label(item, old_label, user, "undo", f"undo of change {history_id} by {by}")

    def store_predictions(self, bundle_hash: str, rows: Sequence[tuple[str, str, float, float]]) -> None:
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO predictions (sha256, bundle_hash, predicted, confidence, uncertainty) VALUES (?, ?, ?, ?, ?)",
                [(sha, bundle_hash, predicted, confidence, uncertainty) for sha, predicted, confidence, uncertainty in rows],
            )

    def _set_label(self, item: Item, new_label: str | None, user: str, action: str, reason: str | None) -> int:
        self._db.execute("UPDATE items SET label=?, labeled_by=? WHERE id=?", (new_label, user, item.id))
        return self._append_history(item.id, item.path, item.sha256, user, item.label, new_label, action, reason)

    def _append_history(self, item_id: int, path: str, sha: str, user: str, old: str | None, new: str | None, action: str, reason: str | None) -> int:
        cursor = self._db.execute(
            "INSERT INTO label_history (item_id, path, sha256, user, utc, old_label, new_label, action, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, path, sha, user, utc_now_iso(), old, new, action, reason),
        )
        return int(cursor.lastrowid)

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, nesting-safe (an inner use inside an outer one is a no-op)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.rollback()


def safe_join(root: Path, relative: str) -> Path:
    """root / relative, refusing absolute paths and anything that resolves outside root."""
    root = Path(root).resolve()
    candidate = (root / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(root):
        raise LabelingError(f"path {relative!r} is outside {root}; refused.")
    return candidate


def build_catalog(catalog: Catalog, progress: bool = True) -> dict[str, Any]:
    """Index DATA (sha256, size, group-aware split) and add new images to the catalog; labels already given stay."""
    from training.dataset_index import index_dataset

    index = index_dataset(catalog.workspace.data_root, progress=progress)
    new_items = [
        NewItem(e.path, "data", e.sha256, None if e.label == UNLABELED_FOLDER else e.label, e.split, e.group, e.width, e.height, e.channels)
        for e in index.entries
    ]
    added = catalog.add_items(new_items, user="folder")
    known = set(catalog.classes())
    for name in index.classes:
        if name != UNLABELED_FOLDER and name not in known:
            catalog.add_class(name, "folder")
    return {"images": len(index.entries), "added": added, "skipped": list(index.skipped), "notes": list(index.notes)}
