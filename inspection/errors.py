"""The one exception tree. Every message names the bad value, what was expected, and the fix.

The CLI prints `str(error)` as one line on stderr and exits with `error.exit_code` (2 for bad
input; 1 where a check ran and found something wrong, as in `bundle verify`).
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """A library's exception as one line (ONNX Runtime, torch and pylon write paragraphs), for our messages."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class InspectionError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 2


class ConfigError(InspectionError):
    """A config file, recipe or option is invalid (unknown key, wrong type, impossible value)."""


class DataError(InspectionError):
    """A dataset is unusable: empty, one class only, unreadable root."""


class CorruptImageError(DataError):
    """One image cannot be decoded or has a shape we cannot use."""


class BundleError(InspectionError):
    """A model bundle is malformed or cannot be used (schema, missing file, wrong layout)."""


class BundleIntegrityError(BundleError):
    """A bundle's files do not match its SHA-256 manifest: changed, missing or unlisted files."""

    exit_code = 1

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class BackendError(InspectionError):
    """A backend cannot be opened or failed during inference."""


class BackendUnavailableError(BackendError):
    """A requested backend, device or precision is not available on this machine."""


class ExportError(InspectionError):
    """Export to ONNX (or an engine) failed, including a failed parity gate."""


class OutputExistsError(InspectionError):
    """Refusing to overwrite something that already exists."""
