"""Helpers of the fault-injection suite (tests/faults): station configs, the CLI, archive reads.

Every test here breaks something real (a file, a socket, a filesystem, a process) under a station
built from real components: ONNX Runtime, the reject gate, the SQLite archive, a pymodbus server
on loopback, pylon's camera emulator.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml


def write_config(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(sections, default=str))))
    return path


def cli(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=timeout_s)


def small_line(**changes) -> dict:
    """A synthetic line small enough that a run costs well under a second of CPU."""
    return {"kind": "synthetic", "pool_size": 8, "width_px": 64, "height_px": 64, "defect_rate": 0.3, **changes}


def archived_sequences(root: Path, lot: str, station: str) -> list[int]:
    """Read with plain sqlite3, independently of the Archive class under test."""
    db = sqlite3.connect(root / "index.sqlite")
    try:
        return [r[0] for r in db.execute("SELECT sequence FROM records WHERE lot=? AND station=? ORDER BY entry_id",
                                         (lot, station))]
    finally:
        db.close()


def delivered_results(server) -> list[tuple[int, int]]:
    """(sequence, RESULT_REJECT) of every result a Modbus test server (the PLC) could act on, in order:
    the result registers, then the handshake that tells the PLC they are complete."""
    from station.signalling import register_map as reg

    delivered, pending = [], None
    for write in server.writes:
        if write.address == reg.RESULT_FIRST:
            pending = write.values
        elif write.address == reg.HANDSHAKE_FIRST and pending is not None:
            delivered.append((reg.join_u32(pending[0], pending[1]), pending[2]))
            pending = None
    return delivered
