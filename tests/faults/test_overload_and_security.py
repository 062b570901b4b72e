"""Overload (a source faster than the backend) and what the station exposes on the network."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import station.runner as runner
from station.archive import Archive
from station.config import MetricsSettings, load_station_config
from station.runner import RunLimits, run_station
from helpers.faults import small_line, write_config
from helpers.modbus_server import free_port


def test_overload_faults_every_overrun_item_in_the_archive_and_alarms(tiny_bundle, tmp_path, monkeypatch):
    """The integration suite checks the tally; here every overrun item must also be in the archive as a
    fault, and nothing be missing: a source at 5,000 items/s against a batch-1 backend."""
    monkeypatch.setattr(runner, "RAW_FPS_SECONDS", 0.05)
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "OV", "id": "st"},
        source=small_line(rate_hz=5000.0), batching={"queue_size": 2, "max_batch": 1},
        gate={"transport_delay_ms": 1000}, archive={"path": str(tmp_path / "arch"), "pass_sample_every": 0},
    ))
    s = run_station(config, RunLimits(frames=1500), progress=False)
    assert s["frames"] == 1500 and s["balanced"] and s["audit_verified"] and s["unarchived"] == 0
    assert s["overruns"] > 0 and any(a.startswith("decision_timeout: overrun") for a in s["alarms"])
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = list(archive.records("OV"))
    assert [r["sequence"] for r in records] == list(range(1, 1501))  # no frame silently dropped
    overrun = [r for r in records if "overrun" in r["reason"]]
    assert len(overrun) == s["overruns"] and all(r["verdict"] == "fault" for r in overrun)


def _listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (local address, port) of this process's listening TCP sockets, read from /proc."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(int(target[8:-1]))
    found = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/self/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or int(fields[9]) not in mine:  # 0A: LISTEN
                continue
            address_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found[int(fields[9])] = (socket.inet_ntop(family, raw), int(port_hex, 16))
    return found


def test_the_station_listens_only_on_loopback_and_offers_no_control_endpoint(tiny_bundle, tmp_path, monkeypatch):
    assert MetricsSettings().host == "127.0.0.1"
    monkeypatch.setattr(runner, "RAW_FPS_SECONDS", 0.05)
    port = free_port()
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), source=small_line(rate_hz=100.0),
        metrics={"enabled": True, "port": port},  # host left at its default
    ))
    before = set(_listening_sockets())
    seen: dict[int, tuple[str, int]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update({k: v for k, v in _listening_sockets().items() if k not in before})
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_station(config, RunLimits(frames=150), progress=False)
    finally:
        done.set()
        watcher.join()
    # The one listener the station opened is the metrics port, on loopback; nothing can change the
    # station over the network (thresholds, bundle and lot come only from the YAML at start).
    assert list(seen.values()) == [("127.0.0.1", port)], seen
