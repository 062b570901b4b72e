"""Review by exception of a lot in the station archive: dispositions, lot sign-off, export to the dataset.

Every action checks the user's role here, not only in the UI, so a request that bypasses the page
(a crafted API call) is refused the same way. Dispositions and signatures are entries of the
archive's hash chain (station.archive); this module never writes the archive any other way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from station.archive import APPROVED_MEANING, Archive
from training.labeling.catalog import Catalog, NewItem
from training.labeling.errors import LabelingError, PermissionDenied
from training.labeling.users import PERMISSIONS, Permission, UsersFile, check_password

EXCEPTION_VERDICTS = ("reject", "uncertain", "fault")


class Action(StrEnum):
    CONFIRM = "confirm reject"
    OVERTURN = "overturn (good)"
    RELABEL = "re-label defect class"


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    lot: str
    station: str
    sequence: int
    captured_utc: str
    verdict: str  # the station's
    defect_class: str | None
    reason: str
    scores: dict[str, float]
    image_sha256: str | None
    current_verdict: str  # after the latest disposition
    current_defect_class: str | None
    dispositions: tuple[dict[str, Any], ...]

    @property
    def key(self) -> str:
        return f"{self.station}#{self.sequence}"


def require(users: UsersFile, user: str, permission: Permission) -> None:
    entry = users.users.get(user)
    if entry is None or permission not in PERMISSIONS[entry.role]:
        role = entry.role.value if entry else "no account"
        raise PermissionDenied(f"user {user!r} ({role}) may not {permission.value}; ask an admin for a reviewer account.")


class ReviewService:
    def __init__(self, archive_root: Path) -> None:
        self.archive_root = Path(archive_root)
        with Archive.open(self.archive_root, create=False):
            pass  # fail early, with the archive's own message, when the path holds no archive

    def _open(self) -> Archive:
        # One connection per call: Gradio handlers run in different threads and sqlite3 forbids sharing.
        return Archive.open(self.archive_root, create=False)

    def lots(self) -> list[str]:
        with self._open() as archive:
            return archive.lots()

    def exceptions(self, lot: str) -> list[ExceptionItem]:
        with self._open() as archive:
            dispositions: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for d in archive.dispositions(lot):
                dispositions.setdefault((d["station"], d["sequence"]), []).append(d)
            items = []
            for r in archive.records(lot):
                if r["verdict"] not in EXCEPTION_VERDICTS and not r["late"]:
                    continue
                done = tuple(dispositions.get((r["station"], r["sequence"]), ()))
                latest = done[-1] if done else None
                items.append(ExceptionItem(
                    r["lot"], r["station"], r["sequence"], r["captured_utc"], r["verdict"], r["defect_class"], r["reason"],
                    dict(zip(r["class_names"], r["scores"])), r["image_sha256"],
                    latest["new_verdict"] if latest else r["verdict"],
                    latest["new_defect_class"] if latest else r["defect_class"], done,
                ))  # fmt: skip
            return items

    def image_path(self, item: ExceptionItem) -> Path | None:
        if item.image_sha256 is None:
            return None
        with self._open() as archive:
            return archive.image_path(item.image_sha256)  # validates the hash: no path from a request reaches the disk

    def signatures(self, lot: str) -> list[dict[str, Any]]:
        with self._open() as archive:
            return list(archive.signatures(lot))

    def dispose(self, users: UsersFile, user: str, item: ExceptionItem, action: Action, reason: str, new_class: str | None = None) -> str:
        """Record a reviewer's disposition of one exception; returns the audit entry's hash."""
        require(users, user, Permission.REVIEW)
        reason = reason.strip()
        if not reason:
            raise LabelingError("a disposition needs a reason (why); type one and submit again.")
        if action == Action.CONFIRM:
            new_verdict = "fault" if item.current_verdict == "fault" else "reject"
            new_defect_class = item.current_defect_class
        elif action == Action.OVERTURN:
            new_verdict, new_defect_class = "pass", None
        elif action == Action.RELABEL:
            if not new_class:
                raise LabelingError("re-labeling needs the new defect class; choose one and submit again.")
            new_verdict, new_defect_class = "reject", new_class
        else:
            raise LabelingError(f"unknown action {action!r}; valid: {', '.join(a.value for a in Action)}.")
        with Archive.open(self.archive_root) as archive:
            return archive.append_disposition(
                item.lot, item.sequence, user, item.current_verdict, new_verdict, reason,
                new_defect_class=new_defect_class, station=item.station,
            )  # fmt: skip

    def sign_lot(self, users: UsersFile, user: str, password: str, lot: str, meaning: str = APPROVED_MEANING) -> str:
        """21 CFR Part 11 sign-off: the signer re-enters the password; name, UTC time and meaning are bound to the lot."""
        require(users, user, Permission.SIGN)
        entry = users.users[user]
        if not check_password(password, entry.password):
            raise PermissionDenied(f"the password for {user!r} is wrong; the lot was not signed. Re-enter your own password.")
        open_items = [i.key for i in self.exceptions(lot) if not i.dispositions]
        if open_items:
            raise LabelingError(f"lot {lot!r} has {len(open_items)} exception(s) without a disposition ({', '.join(open_items[:5])}); review them before signing.")
        with Archive.open(self.archive_root) as archive:
            return archive.append_lot_signature(lot, user, entry.full_name, meaning)

    def export_to_dataset(self, users: UsersFile, user: str, lot: str, catalog: Catalog, good_class: str) -> int:
        """Copy the lot's overturned and re-labeled items into the workspace and add them to the dataset."""
        require(users, user, Permission.REVIEW)
        known = set(catalog.classes())
        if good_class not in known:
            raise LabelingError(f"good class {good_class!r} is not a class of the dataset ({', '.join(sorted(known))}).")
        new_items = []
        for item in self.exceptions(lot):
            if not item.dispositions or item.image_sha256 is None:
                continue
            latest = item.dispositions[-1]
            changed = latest["new_verdict"] != item.verdict or latest["new_defect_class"] != item.defect_class
            if not changed or latest["new_verdict"] not in ("pass", "reject"):
                continue
            label = good_class if latest["new_verdict"] == "pass" else latest["new_defect_class"]
            if label not in known:
                catalog.add_class(label, user)
                known.add(label)
            relative = f"{_folder_safe(lot)}/{item.image_sha256}.png"
            target = catalog.path_of("import", relative)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                shutil.copyfile(self.image_path(item), tmp)
                os.replace(tmp, target)
            new_items.append(NewItem(relative, "import", item.image_sha256, label, "train", f"archive/{lot}/{item.station}/{item.sequence}"))
        return catalog.add_items(new_items, user)


def _folder_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "lot"
