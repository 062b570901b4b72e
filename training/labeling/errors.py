"""Errors of the labeling tool, on the project's one exception tree (exit code 2 in the CLI)."""

from __future__ import annotations

from inspection.errors import ConfigError, DataError, InspectionError


class WorkspaceError(DataError):
    """The labeling workspace cannot be created, written or does not match the dataset."""


class UsersFileError(ConfigError):
    """The users file is missing, malformed, or a user cannot be added."""


class PermissionDenied(InspectionError):
    """The logged-in user's role does not allow the action, or the password was wrong at signing."""


class LabelingError(InspectionError):
    """A labeling or review request is invalid (unknown class, stale label, item not found)."""
