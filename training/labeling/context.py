"""What the app's event handlers share: the catalog, users, the archive and the model, plus per-session state.

Per-session state lives here on the server, keyed by Gradio's session hash, not in gr.State: key
presses fire events faster than round trips, and a gr.State sent with the second press would still
hold the position before the first. Handlers of one tab run one at a time (concurrency_id), so
each sees the state the previous one left.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from inspection.bundle import Bundle
from training.labeling.browse import ItemFilter
from training.labeling.catalog import Catalog
from training.labeling.errors import PermissionDenied
from training.labeling.export import ManifestWriter
from training.labeling.login_guard import LoginGuard
from training.labeling.review import ReviewService
from training.labeling.thumbnails import ThumbnailCache
from training.labeling.users import PERMISSIONS, Permission, UsersFile

PAGE_SIZE = 40


@dataclass(slots=True)
class LabelSession:
    item_filter: ItemFilter
    position: int = 0
    page_offset: int = 0
    undo: list[tuple[int, int]] = field(default_factory=list)  # (label_history id, position then) of this session, newest last
    selection: set[int] = field(default_factory=set)
    shown_page: tuple[int, ...] | None = None  # the grid the browser shows; None forces a redraw


@dataclass(slots=True)
class ReviewSelection:
    lot: str | None = None
    key: str | None = None  # "station#sequence" of the selected exception


@dataclass
class AppContext:
    catalog: Catalog
    guard: LoginGuard
    thumbnails: ThumbnailCache
    manifest: ManifestWriter
    review: ReviewService | None = None
    bundle: Bundle | None = None
    backend: object | None = None  # opened once for predictions and heatmaps
    page_size: int = PAGE_SIZE
    _sessions: dict[str, LabelSession] = field(default_factory=dict)
    _reviews: dict[str, ReviewSelection] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bundle_hash(self) -> str | None:
        return self.bundle.bundle_hash if self.bundle else None

    def session(self, session_hash: str) -> LabelSession:
        with self._lock:
            if session_hash not in self._sessions:
                self._sessions[session_hash] = LabelSession(ItemFilter(bundle_hash=self.bundle_hash))
            return self._sessions[session_hash]

    def review_selection(self, session_hash: str) -> ReviewSelection:
        with self._lock:
            return self._reviews.setdefault(session_hash, ReviewSelection())

    def users(self) -> UsersFile:
        return self.guard.users()

    def require(self, user: str | None, permission: Permission) -> str:
        """The user name, when logged in with a role that has the permission; refused (and logged) otherwise."""
        users = self.users()
        entry = users.users.get(user or "")
        if entry is None or permission not in PERMISSIONS[entry.role]:
            self.guard.log_refusal(user or "(anonymous)", permission.value)
            role = entry.role.value if entry else "no account"
            raise PermissionDenied(f"user {user!r} ({role}) may not {permission.value}.")
        return user

    def heatmap_dir(self) -> Path:
        return self.catalog.workspace.heatmaps_dir
