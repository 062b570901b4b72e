"""Lot sign-off: an electronic signature entry in the archive's chain (21 CFR 11.50, 11.70).

A signature is a third kind of chain entry, beside records and dispositions, and never changes
either. It names the signer (user name and printed full name), the UTC time and the meaning
("reviewed and approved"), and it is bound to the lot: `lot_digest` is the SHA-256 over the
record hashes of every record and disposition of that lot that precede it in the chain, one per
line in chain order. `audit verify` recomputes that digest, so a signature cannot be moved to
another lot or kept valid over entries that were edited, removed or added before it.

    lot_digest = sha256_hex("".join(entry_hash + "\\n" for entry_hash in lot_entries_in_chain_order))
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SIGNATURE_COLUMNS = ("lot", "user", "full_name", "utc", "meaning", "lot_entries", "lot_digest")
APPROVED_MEANING = "reviewed and approved"


@dataclass(frozen=True, slots=True)
class LotSignature:
    lot: str
    user: str
    full_name: str
    utc: str
    meaning: str
    lot_entries: int  # how many records and dispositions of the lot the signature covers
    lot_digest: str


class LotDigest:
    """Running digest of one lot's entry hashes in chain order (used by signing and by verify)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.entries = 0

    def add(self, entry_hash: str) -> None:
        self._sha.update(entry_hash.encode("ascii") + b"\n")
        self.entries += 1

    def hexdigest(self) -> str:
        return self._sha.copy().hexdigest()


def signature_row(signature: LotSignature) -> dict[str, object]:
    return {name: getattr(signature, name) for name in SIGNATURE_COLUMNS}
