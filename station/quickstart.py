"""Build a StationConfig from the quick-start flags (`--bundle B --source SRC ...`), without YAML."""

from __future__ import annotations

from pathlib import Path

from inspection.errors import ConfigError
from inspection.validation import parse_model
from station.config import StationConfig
from station.sources.replay import VIDEO_SUFFIXES


def source_settings(source: str, rate_hz: float | None) -> dict:
    """Tell a SRC argument's kind: synthetic, pylon, a folder, a video file, a camera index or a URL."""
    if source == "synthetic":
        return {"kind": "synthetic", "rate_hz": rate_hz}
    if source == "pylon":
        return {"kind": "pylon"}
    path = Path(source)
    if path.is_dir():
        return {"kind": "folder", "path": path, "rate_hz": rate_hz}
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise ConfigError(f"video file {path} does not exist. Check the path.")
        return {"kind": "opencv", "target": str(path), "rate_hz": rate_hz}
    if source.isdigit() or "://" in source:
        return {"kind": "opencv", "target": source, "rate_hz": rate_hz}
    raise ConfigError(
        f"--source {source!r} is not a folder, a video file, 'synthetic', 'pylon', a camera index or a URL. Fix the source."
    )


def config_from_arguments(bundle: Path | None, source: str | None, rate_hz: float | None, archive: Path | None) -> StationConfig:
    if bundle is None or source is None:
        raise ConfigError("station run needs CONFIG.yaml, or both --bundle and --source. Add the missing option.")
    raw = {"bundle": bundle, "source": source_settings(source, rate_hz), "archive": {"path": archive}}
    return parse_model(StationConfig, raw, "command-line options")
