"""The station's archive and audit trail: append-only, hash-chained records with lossless images.

Public API (flat, over small private-ish modules):
    ItemRecord, Disposition, utc_now_iso       what is archived
    LotSignature, APPROVED_MEANING             a lot sign-off (Archive.append_lot_signature)
    Archive                                    the store (one per thread)
    ArchiveWriter                              the station's background writer (bounded queue, never drops)
    verify_archive, raise_if_bad, VerifyResult `inspection audit verify`
    write_lot_report                           the batch report (review by exception)
"""

from station.archive.errors import (
    ArchiveBackpressure, ArchiveError, ArchiveFailed, AuditVerificationError, ChainHeadError,
)  # fmt: skip
from station.archive.records import Disposition, ItemRecord, utc_now_iso
from station.archive.report import write_lot_report
from station.archive.signatures import APPROVED_MEANING, LotSignature
from station.archive.store import Archive
from station.archive.verify import VerifyResult, raise_if_bad, verify_archive
from station.archive.writer import ArchiveWriter

__all__ = [
    "APPROVED_MEANING", "LotSignature",
    "Archive", "ArchiveBackpressure", "ArchiveError", "ArchiveFailed", "ArchiveWriter", "AuditVerificationError",
    "ChainHeadError", "Disposition", "ItemRecord", "VerifyResult", "raise_if_bad", "utc_now_iso", "verify_archive",
    "write_lot_report",
]  # fmt: skip
