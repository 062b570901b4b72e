"""Which sequence numbers the station has issued, so a crash cannot leave an item without an outcome.

Every item gets its record in the archive only after it reached the gate and the writer committed
it. Items in between (queued, at inference, on the belt, in the writer's queue) exist only in
memory: if the process dies, the archive alone cannot say they were ever issued. The ledger is one
small file beside the index holding the last issued sequence number of the running lot; the capture
thread overwrites it (one pwrite, no fsync: a few microseconds) before the item is tracked.

At the next start, `recover_in_flight` compares it with the archive. Records are committed in
sequence order (the gate acts in trigger order, the writer commits in submit order), so the
committed records are a prefix of the issued numbers and the rest are exactly the items in flight
at the crash. Each gets a `fault` record (outcome unknown, treated as rejected) in one transaction,
so the hash chain continues and every issued number has exactly one outcome.

Durability: a pwrite survives the death of the process (SIGKILL, OOM killer, a segfault) because
the kernel holds the page. Against power loss the heartbeat thread fdatasyncs it every beat, so at
most one heartbeat period of issued numbers can be missing after a power cut (the PLC's result
counter and its own fail-safe cover that window; see docs/audit_trail.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from station.archive import Archive, ItemRecord, utc_now_iso
from station.archive.errors import ArchiveError

LEDGER_PREFIX = "sequence_ledger."
_NUMBER_WIDTH = 20  # room for any 64-bit sequence, so every write has the same length and overwrites all


@dataclass(frozen=True, slots=True)
class LedgerState:
    lot: str
    station: str
    operator: str
    bundle_hash: str
    thresholds_version: str
    first: int  # the first sequence this run would issue
    issued: int  # the last sequence issued; first - 1 before the first item


def ledger_path(archive_root: Path, station_id: str) -> Path:
    # One file per station id, so two stations sharing an archive volume never share a ledger.
    return Path(archive_root) / (LEDGER_PREFIX + re.sub(r"[^A-Za-z0-9._-]", "_", station_id))


class SequenceLedger:
    def __init__(self, path: Path, lot: str, station: str, operator: str, bundle_hash: str,
                 thresholds_version: str, first: int) -> None:
        self.path = Path(path)
        self._head = json.dumps({"lot": lot, "station": station, "operator": operator, "bundle_hash": bundle_hash,
                                 "thresholds_version": thresholds_version, "first": first})[:-1] + ', "issued": '
        self._fd: int | None = None
        self._first = first

    def open(self) -> None:
        # The new run's first line goes in by rename: a crash right here leaves the old ledger or the
        # new one, never an empty file that would stop every later start.
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_bytes(self._line(self._first - 1))
            fd = os.open(tmp, os.O_WRONLY)
            os.fsync(fd)
            os.replace(tmp, self.path)
            self._fd = fd
        except OSError as exc:
            raise ArchiveError(f"cannot write the sequence ledger {self.path} ({exc.strerror or exc}). "
                               "Free space on the archive volume or fix its permissions.") from None

    def issue(self, sequence: int) -> None:
        """Called by the capture thread before the item is tracked; raises OSError if the disk refuses."""
        os.pwrite(self._fd, self._line(sequence), 0)

    def _line(self, sequence: int) -> bytes:
        return f"{self._head}{sequence:<{_NUMBER_WIDTH}d}}}\n".encode()

    def sync(self) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.fsync(fd)
            os.close(fd)


def read_ledger(path: Path) -> LedgerState | None:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return LedgerState(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ArchiveError(f"sequence ledger {path} cannot be read ({exc}): the items of the last run cannot be "
                           "accounted for. Do not delete it; open a deviation and compare with the PLC's counts.") from None


def recover_in_flight(archive_root: Path, station_id: str) -> tuple[str, list[int]]:
    """Give every number the last run issued but never archived a fault record; returns (lot, sequences)."""
    state = read_ledger(ledger_path(archive_root, station_id))
    if state is None:
        return "", []
    with Archive.open(archive_root) as archive:
        last = archive.last_sequence(state.lot, state.station)
        start = max(state.first, (last or 0) + 1)
        missing = list(range(start, state.issued + 1))
        if missing:
            now = utc_now_iso()
            reason = (f"issued but never archived before the station stopped (a crash or an archive failure; "
                      f"found at restart {now}): outcome unknown, treated as rejected; "
                      "capture and decision times are the recovery time")
            archive.append_many([
                ItemRecord(state.lot, state.station, sequence, now, now, None, "fault", None, reason, (), (),
                           state.bundle_hash, state.thresholds_version, state.operator, late=True)
                for sequence in missing
            ])
    return state.lot, missing
