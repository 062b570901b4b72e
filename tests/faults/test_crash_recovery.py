"""SIGKILL the station process at random points, again and again, and restart it each time.

After every kill: the archive opens, `audit verify` passes, and the next start gives each number
the killed run issued but never archived a fault record (outcome unknown, treated as rejected), so
every issued sequence number ends with exactly one record and the hash chain runs on. A real
pymodbus server stands in for the PLC and is the independent witness: no item the PLC got as a
reject is archived as a pass, and no archived pass is one the PLC did not get as a pass.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.archive import Archive, verify_archive
from station.sequence_ledger import ledger_path, read_ledger
from helpers.faults import cli, delivered_results, small_line, write_config
from helpers.modbus_server import ModbusTestServer

KILLS_MID_RUN = 20  # the issue asks for at least 20
KILLS_AT_START = 4  # extra kills before the first item: during start-up and the recovery itself
SEED = 20261126
LOT, STATION = "CRASH", "st-1"

# The station CLI, with the 1.5 s raw-backend measurement cut short: it is a comparison figure, not
# under test here, and 24 restarts would spend most of their time on it.
STATION_MAIN = ("import sys, station.runner as r; r.RAW_FPS_SECONDS = 0.05; "
                "from inspection.cli import main; sys.exit(main(sys.argv[1:]))")



def issued_by_running_station(archive: Path, started_after: float) -> int | None:
    """The last number the station started after `started_after` has issued; None before its first item."""
    path = ledger_path(archive, STATION)
    try:
        if path.stat().st_mtime < started_after:
            return None
        state = read_ledger(path)
    except Exception:  # not there yet, or read mid-rename
        return None
    return state.issued if state and state.issued >= state.first else None


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_item_and_the_chain_continues(passing_bundle, tmp_path):
    rng = random.Random(SEED)
    server = ModbusTestServer().start()
    archive = tmp_path / "arch"
    config = write_config(
        tmp_path / "s.yaml", bundle=str(passing_bundle), station={"lot": LOT, "id": STATION},
        source=small_line(rate_hz=300.0), gate={"transport_delay_ms": 40},
        output={"kind": "modbus", "host": "127.0.0.1", "port": server.port, "heartbeat_interval_s": 0.1},
        archive={"path": str(archive), "pass_sample_every": 7},
    )
    plan = ["start"] * KILLS_AT_START + ["mid-run"] * KILLS_MID_RUN
    rng.shuffle(plan)
    kills: list[dict] = []
    try:
        for where in plan:
            started = time.time()
            process = subprocess.Popen([sys.executable, "-c", STATION_MAIN, "station", "run", str(config),
                                        "--duration-s", "60", "--json"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if where == "start":
                time.sleep(rng.uniform(0.0, 2.0))  # imports, bundle check, recovery, or the first items
                issued = issued_by_running_station(archive, started)
            else:
                deadline = time.monotonic() + 60
                while (issued := issued_by_running_station(archive, started)) is None:
                    assert process.poll() is None, process.stderr.read().decode()
                    assert time.monotonic() < deadline, "the station never started issuing items"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.8))
                issued = issued_by_running_station(archive, started)
            assert process.poll() is None, f"the station ended before the kill: {process.stderr.read().decode()}"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            process.stderr.close()
            kills.append({"where": where, "issued_at_kill": issued})
            if (archive / "index.sqlite").exists():
                # What the next start will find: an archive that opens and verifies, crash or not.
                with Archive.open(archive, create=False):
                    pass
                result = verify_archive(archive)
                assert result.ok, (len(kills), result.first_bad)

        final = cli("station", "run", str(config), "--frames", "30", "--json")
    finally:
        server.stop()
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["audit_verified"] is True
    assert cli("audit", "verify", str(archive)).returncode == 0

    mid_run = [k for k in kills if k["issued_at_kill"] is not None]
    assert len(mid_run) >= KILLS_MID_RUN
    db = sqlite3.connect(archive / "index.sqlite")
    rows = db.execute("SELECT sequence, verdict, reason FROM records WHERE lot=? AND station=? ORDER BY entry_id",
                      (LOT, STATION)).fetchall()
    entries = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    db.close()
    sequences = [r[0] for r in rows]
    # Every number ever issued has exactly one record, in order, and nothing else is in the chain.
    last_issued = max(k["issued_at_kill"] for k in mid_run)
    assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) == entries
    assert len(sequences) >= last_issued + 30
    recovered = {seq for seq, verdict, reason in rows if reason.startswith("issued but never archived")}
    assert all(verdict == "fault" for seq, verdict, reason in rows if seq in recovered)
    assert recovered, "no kill left an item in flight: the test did not exercise recovery"
    # The PLC as witness: what it got as a reject is never archived as a pass, and every archived pass
    # is one it got as a pass. (A pass the PLC got may be recovered as a fault: its record was in flight.)
    verdicts = {seq: verdict for seq, verdict, _ in rows}
    in_order = delivered_results(server)
    delivered = dict(in_order)
    assert len(delivered) == len(in_order), "a sequence number was signalled twice: numbering restarted"
    assert delivered and set(delivered) <= set(verdicts)
    assert all(verdicts[seq] != "pass" for seq, reject in delivered.items() if reject)
    passes = [seq for seq, verdict in verdicts.items() if verdict == "pass"]
    assert passes and all(delivered.get(seq) == 0 for seq in passes)
    print(f"\n{len(kills)} kills ({len(mid_run)} mid-run), {len(sequences)} records checked, "
          f"{len(recovered)} in-flight items recovered as faults, 0 lost")
