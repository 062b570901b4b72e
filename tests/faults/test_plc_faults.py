"""The PLC (a real pymodbus server on loopback) is killed mid-run and restarted like a rebooted PLC.

The whole station runs (synthetic line, ONNX Runtime, reject gate, archive). What the PLC received
is read from the server's own write log, independently of the station's counters.
"""

from __future__ import annotations

import threading
import time

import station.runner as runner
from station.archive import Archive
from station.config import load_station_config
from station.runner import RunLimits, run_station
from station.signalling import register_map as reg
from helpers.faults import delivered_results, small_line, write_config
from helpers.modbus_server import ModbusTestServer

FRAMES = 300
RATE_HZ = 100.0
HEARTBEAT_S = 0.05
OUTAGE_S = 0.6



def test_plc_killed_and_restarted_mid_run(passing_bundle, tmp_path, monkeypatch, live_pipeline):
    monkeypatch.setattr(runner, "RAW_FPS_SECONDS", 0.1)
    server = ModbusTestServer().start()
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(passing_bundle), station={"lot": "PLC1", "id": "st"},
        source=small_line(rate_hz=RATE_HZ), gate={"transport_delay_ms": 100},
        output={"kind": "modbus", "host": "127.0.0.1", "port": server.port, "timeout_s": 0.2,
                "heartbeat_interval_s": HEARTBEAT_S},
        archive={"path": str(tmp_path / "arch"), "pass_sample_every": 0},
    ))
    outage: dict[str, float] = {}

    def kill_and_restart() -> None:
        while not live_pipeline or live_pipeline[0].tally.frames < FRAMES // 4:
            time.sleep(0.005)
        outage["down"] = time.monotonic()
        server.stop()  # listener and every connection closed: the PLC is gone
        time.sleep(OUTAGE_S)
        server.start()  # back on the same port with its registers cleared, like a rebooted PLC
        outage["up"] = time.monotonic()

    thread = threading.Thread(target=kill_and_restart)
    thread.start()
    try:
        s = run_station(config, RunLimits(frames=FRAMES), progress=False)
    finally:
        thread.join(10)
        server.stop()

    # The station alarmed with the PLC-communication reason, and re-wrote the alarm after the reboot.
    assert any(a.startswith("plc_communication:") for a in s["alarms"]), s["alarms"]
    # (On a loaded 2-core machine an item can also miss its 20 ms gate window; that alarm may be the last.)
    alarm, reason = server.registers(reg.ALARM, 2)
    assert alarm == 1 and reason in (reg.AlarmReason.PLC_COMMUNICATION, reg.AlarmReason.MISSED_GATE)
    # Fail-safe meanwhile: every result the PLC missed is a fault, counted, never a pass.
    gate = s["gate"]
    assert gate["publish_failures"] > 0 and s["fault"] >= gate["publish_failures"]
    assert s["balanced"] and s["frames"] == FRAMES and s["audit_verified"]
    # It reconnected: results flow again after the restart, and the identification was re-written.
    after = [w for w in server.writes if w.time_s > outage["up"]]
    assert any(w.address == reg.TEXT_FIRST for w in after) and any(w.address == reg.RESULT_FIRST for w in after)
    # The heartbeat shows the outage to the PLC's watchdog: a gap of the outage, steady beats otherwise.
    beats = [w.time_s for w in server.writes if w.address == reg.HEARTBEAT]
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert max(gaps) >= OUTAGE_S * 0.9
    assert sorted(gaps)[len(gaps) // 2] < 3 * HEARTBEAT_S
    # No item is recorded as passed that the PLC did not get as a pass; every delivered reject is no pass.
    delivered = dict(delivered_results(server))
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = {r["sequence"]: r for r in archive.records("PLC1")}
    assert sorted(records) == list(range(1, FRAMES + 1))
    passed = {seq for seq, r in records.items() if r["verdict"] == "pass"}
    assert passed and all(delivered.get(seq) == 0 for seq in passed)
    assert all(records[seq]["verdict"] != "pass" for seq, reject in delivered.items() if reject)
    missed = set(records) - set(delivered)
    assert missed and all(records[seq]["verdict"] == "fault" for seq in missed)
    # Every item the PLC never got was counted. The one result being written when the PLC went down
    # may have reached it with its answer lost: counted as failed (a fault), yet in the PLC's log.
    counted = gate["publish_failures"] + gate["missed_gate"]
    assert counted - 1 <= len(missed) <= counted
    unacknowledged = {seq for seq in delivered if seq in records and records[seq]["verdict"] == "fault" and not delivered[seq]}
    assert len(unacknowledged) <= 1
