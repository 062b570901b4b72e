"""Benchmark result files that keep the result they replace, so a rerun never loses a committed measurement.

    .venv/bin/python -m training.bench.result_file NEW.json RESULT.json   (for shell scripts)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from inspection.errors import ConfigError

PREVIOUS_KEY = "previous"


def write_result(path: Path, result: dict) -> None:
    """Write `result` as JSON at `path`; a result already there goes inside it under "previous"
    (which holds its own previous, and so back to the first run)."""
    path = Path(path)
    if path.is_file():
        try:
            result = {**result, PREVIOUS_KEY: json.loads(path.read_text(encoding="utf-8"))}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{path} exists and is not a JSON result. Move it away, or pass another --out.") from None
    write_json(path, result)


def write_json(path: Path, data: dict) -> None:
    """`data` as indented JSON at `path`, written beside it first so that a reader never sees half a file."""
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    staging.replace(path)


def write_or_print(result: dict, out: Path | None) -> None:
    """A benchmark script's ending: the result into `out` (keeping the one it replaces), else on stdout."""
    if out is None:
        print(result)
        return
    write_result(out, result)
    print(f"written to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m training.bench.result_file NEW.json RESULT.json")
    write_result(Path(sys.argv[2]), json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
