"""What `inspection label` checks and opens before the web app exists: the port, the users file, the
dataset's workspace and catalog, the archive and the bundle. None of it needs Gradio, whose import
takes seconds: bad input is told at once (exit 2), before the app is built."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from inspection.bundle import load_bundle
from inspection.errors import ConfigError
from training.labeling.catalog import Catalog, build_catalog
from training.labeling.context import AppContext
from training.labeling.export import ManifestWriter, write_manifest
from training.labeling.login_guard import LoginGuard
from training.labeling.review import ReviewService
from training.labeling.thumbnails import ThumbnailCache
from training.labeling.users import load_users
from training.labeling.workspace import open_workspace


@dataclass(frozen=True, slots=True)
class LabelServerConfig:
    data: Path
    users: Path
    archive: Path | None = None
    bundle: Path | None = None
    workspace: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    rescan: bool = False


def open_context(config: LabelServerConfig, progress: bool = True) -> AppContext:
    """Everything the app needs, checked before the server starts (bad input fails here, with exit 2)."""
    load_users(config.users)  # a missing or malformed users file is an error now, not at the first login
    workspace = open_workspace(config.data, config.workspace)
    catalog = Catalog.open(workspace)
    if config.rescan or catalog.count() == 0:
        build_catalog(catalog, progress=progress)
    write_manifest(catalog)
    review = ReviewService(config.archive) if config.archive is not None else None
    bundle = load_bundle(config.bundle) if config.bundle is not None else None
    backend = None
    if bundle is not None:
        from inspection.backends import open_backend

        backend = open_backend("onnxruntime", bundle)
    guard = LoginGuard(config.users, workspace.access_log)
    return AppContext(catalog, guard, ThumbnailCache(workspace.thumbs_dir), ManifestWriter(catalog), review, bundle, backend)


def check_port_free(host: str, port: int) -> None:
    """Gradio's own message for a taken port points at an environment variable, not at --port."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: TIME_WAIT is no obstacle
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"port {port} on {host} cannot be opened ({exc.strerror or exc}): another program holds it, or "
                          "the address is not this machine's. Pass --port with a free port, or --host 127.0.0.1.") from None
