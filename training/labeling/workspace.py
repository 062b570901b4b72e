"""Where the labeling tool keeps its state, so that DATA itself can be read-only and is never written.

    <workspace>/
      workspace.json          which dataset folder this workspace belongs to
      catalog.sqlite          images, classes, append-only label history, cached predictions
      manifest.jsonl          the dataset manifest with the current labels (after each change)
      thumbs/<sha[:2]>/<sha>.jpg   thumbnail cache
      imports/<lot>/<sha>.png      archive images a reviewer exported into the dataset
      heatmaps/               rendered heatmaps
      access.log              logins (ok, failed, locked) and refused actions

Default location: $XDG_DATA_HOME/inspection/labeling/<DATA name>-<8 hex of DATA's absolute path>
(~/.local/share/... without XDG_DATA_HOME); `--workspace DIR` chooses another.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from training.labeling.errors import WorkspaceError
from training.labeling.users import default_users_path

WORKSPACE_FILE = "workspace.json"


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    data_root: Path

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def imports_dir(self) -> Path:
        return self.root / "imports"

    @property
    def heatmaps_dir(self) -> Path:
        return self.root / "heatmaps"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"


def default_workspace_path(data_root: Path) -> Path:
    resolved = Path(data_root).resolve()
    tag = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:8]
    return default_users_path().parent / "labeling" / f"{resolved.name}-{tag}"


def open_workspace(data_root: Path, workspace: Path | None = None) -> Workspace:
    """Create or reopen the workspace of DATA; refuses one that belongs to another dataset."""
    data_root = Path(data_root).resolve()
    if not data_root.is_dir():
        raise WorkspaceError(f"dataset folder {data_root} does not exist. Pass a folder laid out as DATA/<class>/<images>.")
    root = Path(workspace) if workspace is not None else default_workspace_path(data_root)
    root = root.resolve()
    if root == data_root or root.is_relative_to(data_root):
        raise WorkspaceError(f"workspace {root} is inside the dataset {data_root}; images are never written there. Pass --workspace outside DATA.")
    marker = root / WORKSPACE_FILE
    if not marker.is_file() and root.is_dir() and any(root.iterdir()):
        raise WorkspaceError(f"{root} holds files and is not a labeling workspace (no {WORKSPACE_FILE}). "
                             "Pass --workspace with a new or empty folder.")
    try:
        for sub in ("", "thumbs", "imports", "heatmaps"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        probe = root / f".write_probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WorkspaceError(f"labeling workspace {root} is not writable ({exc.strerror or exc}). Pass --workspace DIR on a writable disk.") from None
    if marker.is_file():
        recorded = Path(json.loads(marker.read_text(encoding="utf-8"))["data_root"])
        if recorded != data_root:
            raise WorkspaceError(f"workspace {root} belongs to dataset {recorded}, not {data_root}. Pass another --workspace.")
    else:
        marker.write_text(json.dumps({"data_root": str(data_root)}, indent=2) + "\n", encoding="utf-8")
    return Workspace(root, data_root)
