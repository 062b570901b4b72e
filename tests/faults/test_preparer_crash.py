"""SIGKILL a station that prepares frames in worker processes: its workers end, and its shared memory
leaves /dev/shm, with nobody to close them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.faults import small_line, write_config


def children_of(pid: int) -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the field after the state: the parent's pid
                children.add(int(entry))
    return children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_station_leaves_no_preparer_process_and_no_shared_memory(passing_bundle, tmp_path):
    before = set(os.listdir("/dev/shm"))
    config = write_config(tmp_path / "s.yaml", bundle=str(passing_bundle), source=small_line(rate_hz=200.0),
                          batching={"prepare_processes": 2})
    station = subprocess.Popen([sys.executable, "-m", "inspection.cli", "station", "run", str(config), "--duration-s", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(set(os.listdir("/dev/shm")) - before) < 8 + 2 * 3:  # the line's 8 frames and the workers' 6 slots
            assert station.poll() is None, station.stderr.read().decode()
            assert time.monotonic() < deadline, "the station never set up its shared memory"
            time.sleep(0.05)
        time.sleep(1.0)  # frames flowing
        workers = {pid for pid in children_of(station.pid) if "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_text()}
        assert len(workers) >= 2  # the two preparers (and Python's resource tracker)
        os.kill(station.pid, signal.SIGKILL)
        station.wait(10)
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) or set(os.listdir("/dev/shm")) - before:
            assert time.monotonic() < deadline, (
                f"left behind: processes {[pid for pid in workers if alive(pid)]}, "
                f"/dev/shm {sorted(set(os.listdir('/dev/shm')) - before)}")
            time.sleep(0.1)
    finally:
        if station.poll() is None:
            station.kill()
            station.wait(10)
        station.stderr.close()
