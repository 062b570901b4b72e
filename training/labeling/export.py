"""The dataset manifest with the current labels, and `inspection data export`: a training-ready copy.

The manifest has the foundation's format (training.dataset_index.ManifestEntry): `source` is
"folder" for a label that came from the class folder and the user's name for one given in the tool.
Unlabeled images are left out of both (a model cannot learn from them).

Export layout (split folders, so `inspection train DIR` keeps the catalog's group-aware split):
    DIR/<train|val|test>/<class>/<file name>   copies; a name clash gets the SHA-256 prefix
    DIR/groups.csv                             path,label,group
    DIR/manifest.jsonl                         the manifest of DIR itself
    DIR/label_history.jsonl                    who labeled what, when (the whole history)
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import threading
from pathlib import Path

from inspection.bundle import ensure_not_in_bundle
from inspection.errors import OutputExistsError
from training.dataset_index import ManifestEntry, write_manifest_jsonl
from training.labeling.catalog import ITEM_COLUMNS, Catalog, Item


def labeled_items(catalog: Catalog) -> list[Item]:
    return [Item(*row) for row in catalog.query(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE label IS NOT NULL ORDER BY origin, path")]


def manifest_entries(catalog: Catalog) -> list[ManifestEntry]:
    return [_entry(item, item.path if item.origin == "data" else f"imports/{item.path}") for item in labeled_items(catalog)]


def _entry(item: Item, path: str) -> ManifestEntry:
    source = "folder" if item.labeled_by in (None, "folder") else item.labeled_by
    return ManifestEntry(path, item.sha256, item.label, item.split, item.grp, source, item.width or 0, item.height or 0, item.channels or 0)


def write_manifest(catalog: Catalog) -> Path:
    path = catalog.workspace.manifest_path
    write_manifest_jsonl(manifest_entries(catalog), path)
    return path


class ManifestWriter:
    """Rewrites the workspace manifest in a background thread after label changes, coalescing bursts."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._dirty = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="manifest-writer", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        self._idle.clear()
        self._dirty.set()

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._idle.wait(timeout_s)

    def close(self) -> None:
        self._stop = True
        self._dirty.set()
        self._thread.join(timeout=30.0)

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            write_manifest(self._catalog)
            if not self._dirty.is_set():
                self._idle.set()
            if self._stop:
                return


def export_dataset(catalog: Catalog, out: Path) -> dict:
    """Copy every labeled image into OUT/<split>/<class>/; OUT must not exist yet."""
    out = Path(out)
    if out.exists():
        raise OutputExistsError(f"{out} already exists; export writes a new folder. Choose another --out or remove it.")
    data_root = catalog.workspace.data_root
    if out.resolve().is_relative_to(data_root):
        raise OutputExistsError(f"--out {out} is inside the dataset {data_root}, which is never written. Choose an --out outside it.")
    ensure_not_in_bundle(out, "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    # A new, uniquely named staging folder: nothing that already exists is ever removed. (Not mkdtemp:
    # its 0700 would stay on the export, which a training job under another account must read.)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        return _export_into(catalog, staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _export_into(catalog: Catalog, staging: Path, out: Path) -> dict:
    entries, groups, used = [], [], set()
    for item in labeled_items(catalog):
        name = Path(item.path).name
        relative = f"{item.split}/{item.label}/{name}"
        if relative in used:
            relative = f"{item.split}/{item.label}/{item.sha256[:12]}_{name}"
        used.add(relative)
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(catalog.file_path(item), target)
        entries.append(_entry(item, relative))
        groups.append((relative, item.label, item.grp))
    with open(staging / "groups.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "label", "group"))
        writer.writerows(groups)
    write_manifest_jsonl(entries, staging / "manifest.jsonl")
    with open(staging / "label_history.jsonl", "w", encoding="utf-8") as handle:
        for change in catalog.history():
            handle.write(json.dumps(change, sort_keys=True) + "\n")
    os.replace(staging, out)
    classes = sorted({e.label for e in entries})
    return {"out": str(out), "images": len(entries), "classes": classes}
