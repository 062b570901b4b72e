"""Errors of the archive and audit trail, on the project's one exception tree (inspection.errors)."""

from __future__ import annotations

from inspection.errors import InspectionError


class ArchiveError(InspectionError):
    """The archive cannot be opened or written, or a request names something it does not hold."""


class ArchiveBackpressure(ArchiveError):
    """The writer's queue is full: archiving cannot keep up. The station must alarm and stop the line."""


class ArchiveFailed(ArchiveError):
    """The writer hit an append error earlier; nothing more is accepted until the station is restarted."""


class ChainHeadError(ArchiveError):
    """Entries were committed but the chain_head file beside the index could not be rewritten."""


class AuditVerificationError(InspectionError):
    """`audit verify` ran and found the archive tampered with or incomplete."""

    exit_code = 1
