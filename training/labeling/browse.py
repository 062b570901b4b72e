"""Filters and pagination over the catalog: only one page of ids is ever loaded, whatever the dataset size."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from training.labeling.catalog import Catalog
from training.labeling.errors import LabelingError

UNLABELED = "(unlabeled)"
ANY = "(any)"
# A prediction this confident that disagrees with the label is worth a second look.
MISLABELED_MIN_CONFIDENCE = 0.8


class Order(StrEnum):
    PATH = "file name"
    UNCERTAIN = "most uncertain first"
    MISLABELED = "likely mislabeled"


@dataclass(frozen=True, slots=True)
class ItemFilter:
    label: str = ANY  # ANY, UNLABELED or a class
    split: str = ANY
    predicted: str = ANY  # needs a bundle
    order: Order = Order.PATH
    bundle_hash: str | None = None  # predictions of this bundle are used for predicted/uncertain/mislabeled


@dataclass(frozen=True, slots=True)
class Page:
    item_ids: tuple[int, ...]
    offset: int
    total: int


def _where(item_filter: ItemFilter) -> tuple[str, str, list[Any]]:
    """(JOIN, WHERE, args) for a filter."""
    needs_predictions = item_filter.predicted != ANY or item_filter.order != Order.PATH
    if needs_predictions and item_filter.bundle_hash is None:
        raise LabelingError("filters by prediction or uncertainty need a model: start with --bundle BUNDLE.")
    join = "JOIN predictions p ON p.sha256 = items.sha256 AND p.bundle_hash = ?" if needs_predictions else ""
    args: list[Any] = [item_filter.bundle_hash] if needs_predictions else []
    clauses: list[str] = []
    if item_filter.label == UNLABELED:
        clauses.append("items.label IS NULL")
    elif item_filter.label != ANY:
        clauses.append("items.label = ?")
        args.append(item_filter.label)
    if item_filter.split != ANY:
        clauses.append("items.split = ?")
        args.append(item_filter.split)
    if item_filter.predicted != ANY:
        clauses.append("p.predicted = ?")
        args.append(item_filter.predicted)
    if item_filter.order == Order.MISLABELED:
        clauses.append("items.label IS NOT NULL AND p.predicted <> items.label AND p.confidence >= ?")
        args.append(MISLABELED_MIN_CONFIDENCE)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return join, where, args


_ORDER_SQL = {
    Order.PATH: "items.origin, items.path",
    Order.UNCERTAIN: "p.uncertainty DESC, items.path",
    Order.MISLABELED: "p.confidence DESC, items.path",
}


def page(catalog: Catalog, item_filter: ItemFilter, offset: int, limit: int) -> Page:
    join, where, args = _where(item_filter)
    total = catalog.query(f"SELECT COUNT(*) FROM items {join} {where}", args)[0][0]
    offset = max(0, min(int(offset), max(total - 1, 0)))
    rows = catalog.query(f"SELECT items.id FROM items {join} {where} ORDER BY {_ORDER_SQL[item_filter.order]} LIMIT ? OFFSET ?", [*args, int(limit), offset])
    return Page(tuple(r[0] for r in rows), offset, total)


def item_at(catalog: Catalog, item_filter: ItemFilter, position: int) -> tuple[int | None, int]:
    """The id of the item at a position in the filtered order (None when empty) and the total."""
    result = page(catalog, item_filter, position, 1)
    return (result.item_ids[0] if result.item_ids else None), result.total
