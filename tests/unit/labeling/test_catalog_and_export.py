"""Workspace, catalog, label history, browsing and export, without a browser."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from helpers.images import make_two_class_dataset
from inspection.errors import OutputExistsError
from training.dataset_index import index_dataset
from training.labeling.browse import UNLABELED, ItemFilter, Order, page
from training.labeling.catalog import Catalog, build_catalog, safe_join
from training.labeling.errors import LabelingError, WorkspaceError
from training.labeling.export import export_dataset, manifest_entries, write_manifest
from training.labeling.workspace import open_workspace


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    data = make_two_class_dataset(tmp_path / "data", per_class=6, size_px=32)
    (data / "unlabeled").mkdir()
    (data / "unlabeled" / "new.png").write_bytes((data / "good" / "good_000.png").read_bytes())
    catalog = Catalog.open(open_workspace(data, tmp_path / "ws"))
    build_catalog(catalog, progress=False)
    return catalog


def ids(catalog: Catalog, **filters) -> list[int]:
    return list(page(catalog, ItemFilter(**filters), 0, 100).item_ids)


def test_catalog_keeps_the_index_split_and_unlabeled_images(catalog: Catalog) -> None:
    assert catalog.classes() == ["defect", "good"]
    assert catalog.count() == 13
    (unlabeled,) = catalog.items(ids(catalog, label=UNLABELED))
    assert unlabeled.path == "unlabeled/new.png" and unlabeled.label is None
    index = {e.path: e.split for e in index_dataset(catalog.workspace.data_root, progress=False).entries}
    assert all(item.split == index[item.path] for item in catalog.items(ids(catalog)))


def test_labels_go_through_an_append_only_history(catalog: Catalog) -> None:
    (item_id,) = ids(catalog, label=UNLABELED)
    catalog.assign([item_id], "defect", "leo")
    (second,) = catalog.assign([item_id], "good", "rita")
    assert catalog.assign([item_id], "good", "rita") == []  # unchanged: no history entry
    catalog.undo(second, "rita")
    history = [(h["user"], h["old_label"], h["new_label"], h["action"]) for h in catalog.history(item_id)]
    assert history == [("leo", None, "defect", "label"), ("rita", "defect", "good", "label"), ("rita", "good", "defect", "undo")]
    assert catalog.item(item_id).label == "defect"
    with pytest.raises(LabelingError, match="changed since"):
        catalog.undo(second, "leo")  # it set 'good', the label is 'defect' now: a stale undo is refused
    db = sqlite3.connect(catalog.workspace.catalog_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE label_history SET user='someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM label_history")


def test_unknown_class_is_refused_and_a_new_class_can_be_added(catalog: Catalog) -> None:
    first = ids(catalog)[:2]
    with pytest.raises(LabelingError, match="class 'scratched' does not exist; classes are: defect, good"):
        catalog.assign(first, "scratched", "leo")
    catalog.add_class("scratched", "leo")
    assert len(catalog.assign(first, "scratched", "leo", action="bulk")) == 2
    assert ids(catalog, label="scratched") == first
    for bad in ("../x", ".hidden", "unlabeled", "defect"):
        with pytest.raises(LabelingError):
            catalog.add_class(bad, "leo")


def test_pagination_and_split_filter(catalog: Catalog) -> None:
    everything = ids(catalog)
    pages = [page(catalog, ItemFilter(), offset, 5) for offset in (0, 5, 10)]
    assert [len(p.item_ids) for p in pages] == [5, 5, 3] and all(p.total == 13 for p in pages)
    assert [i for p in pages for i in p.item_ids] == everything
    train = catalog.items(ids(catalog, split="train"))
    assert train and all(item.split == "train" for item in train)


def test_prediction_filters_need_a_bundle_and_sort_by_uncertainty(catalog: Catalog) -> None:
    with pytest.raises(LabelingError, match="--bundle"):
        page(catalog, ItemFilter(order=Order.UNCERTAIN), 0, 10)
    items = catalog.items(ids(catalog))
    rows = [(item.sha256, "good", 0.95, 0.1) for item in items]
    rows[3] = (items[3].sha256, "good", 0.5, 0.9)  # the most uncertain
    catalog.store_predictions("B", rows)
    assert ids(catalog, order=Order.UNCERTAIN, bundle_hash="B")[0] == items[3].id
    mislabeled = catalog.items(ids(catalog, order=Order.MISLABELED, bundle_hash="B"))
    assert mislabeled and all(item.label == "defect" for item in mislabeled)  # confident "good" on a defect label
    assert items[3].id not in {item.id for item in mislabeled}  # not confident enough


def test_path_traversal_is_refused(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    for bad in ("../secret", "/etc/passwd", "a/../../secret"):
        with pytest.raises(LabelingError, match="outside"):
            safe_join(tmp_path, bad)


def test_workspace_must_be_writable_and_outside_data(tmp_path: Path) -> None:
    data = make_two_class_dataset(tmp_path / "data", per_class=2, size_px=16)
    with pytest.raises(WorkspaceError, match="inside the dataset"):
        open_workspace(data, data / "ws")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not __import__("os").access(locked, __import__("os").W_OK):  # root can write anywhere
            with pytest.raises(WorkspaceError, match="not writable.*--workspace"):
                open_workspace(data, locked / "ws")
    finally:
        locked.chmod(0o700)
    open_workspace(data, tmp_path / "ws")
    other = make_two_class_dataset(tmp_path / "other", per_class=2, size_px=16)
    with pytest.raises(WorkspaceError, match="belongs to dataset"):
        open_workspace(other, tmp_path / "ws")


def test_manifest_and_export_carry_the_labels(catalog: Catalog, tmp_path: Path) -> None:
    (item_id,) = ids(catalog, label=UNLABELED)
    catalog.assign([item_id], "good", "leo")
    write_manifest(catalog)
    manifest = {e["path"]: e for e in map(json.loads, catalog.workspace.manifest_path.read_text().splitlines())}
    assert manifest["unlabeled/new.png"]["label"] == "good" and manifest["unlabeled/new.png"]["source"] == "leo"
    summary = export_dataset(catalog, tmp_path / "export")
    assert summary["images"] == 13 and summary["classes"] == ["defect", "good"]
    exported = index_dataset(tmp_path / "export", progress=False)
    assert {(e.sha256, e.label) for e in exported.entries} == {(e.sha256, e.label) for e in manifest_entries(catalog)}
    assert len((tmp_path / "export" / "label_history.jsonl").read_text().splitlines()) == 1
    with pytest.raises(OutputExistsError):
        export_dataset(catalog, tmp_path / "export")
