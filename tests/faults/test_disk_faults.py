"""The archive disk fills up or turns read-only while the line runs.

Disk full is real: the archive lives on a size-limited tmpfs (needs root, as on the CI machine;
skipped elsewhere). A volume that turns read-only under open files cannot be made without a block
device (the kernel refuses to remount a filesystem with files open for writing), so that case
injects EROFS where the archive writes its files; the read-only volume at start is real.
Checked: the line stops (or alarms) per policy, the PLC sees the archive alarm, no acknowledged
record is lost, `audit verify` passes, and after space returns a restart gives every item a record.
"""

from __future__ import annotations

import errno
import json
import subprocess

import pytest

import station.archive.store as store
import station.runner as runner
from station.config import load_station_config
from station.runner import RunLimits, run_station
from station.signalling import register_map as reg
from helpers.faults import archived_sequences, cli, small_line, write_config
from helpers.modbus_server import ModbusTestServer


def _mount_tmpfs(path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({result.stderr.strip()}); needs root")


@pytest.fixture
def volume(tmp_path):
    """A 384 KiB tmpfs: room for a few dozen small records and images, then ENOSPC."""
    path = tmp_path / "vol"
    _mount_tmpfs(path, "size=384k")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def _records(root) -> dict[int, str]:
    import sqlite3

    db = sqlite3.connect(root / "index.sqlite")
    try:
        return dict(db.execute("SELECT sequence, record_hash FROM records ORDER BY entry_id"))
    finally:
        db.close()


def test_disk_full_stops_the_line_and_a_restart_after_cleanup_accounts_for_every_item(passing_bundle, tmp_path, volume):
    server = ModbusTestServer().start()
    archive = volume / "arch"
    config = write_config(
        tmp_path / "s.yaml", bundle=str(passing_bundle), station={"lot": "DF", "id": "st"},
        source=small_line(rate_hz=200.0), gate={"transport_delay_ms": 50},
        output={"kind": "modbus", "host": "127.0.0.1", "port": server.port, "timeout_s": 0.5},
        archive={"path": str(archive), "pass_sample_every": 1},
    )
    try:
        full = cli("station", "run", str(config), "--frames", "2000", "--json")
        assert server.registers(reg.ALARM, 2) == [1, reg.AlarmReason.ARCHIVE]
        assert server.registers(reg.READY) == [0]
        # sequence -> (RESULT_REJECT, RESULT_VERDICT) as the PLC received them
        signalled = {(w.values[0] << 16) | w.values[1]: (w.values[2], w.values[3]) for w in server.writes_to(reg.RESULT_SEQUENCE_HI)}
    finally:
        server.stop()
    assert full.returncode == 1, full.stderr
    s = json.loads(full.stdout)
    assert "disk full" in s["archive_failure"] and s["frames"] < 2000  # the line stopped early
    assert s["balanced"] and s["audit_verified"] is True
    assert f"error: {s['unarchived']} items have no archive record" in full.stderr
    acknowledged = _records(archive)
    assert list(acknowledged) == list(range(1, s["archived"] + 1))  # committed records: a gap-free prefix
    assert s["unarchived_sequences"] == list(range(s["archived"] + 1, s["frames"] + 1))
    assert cli("audit", "verify", str(archive)).returncode == 0  # intact while still full
    # Every pass the PLC got has its committed record, or the run names it as product to segregate; the
    # items that reached the gate after the failure (nearly all good) were signalled as faults instead.
    released = {sequence for sequence, (reject, _) in signalled.items() if not reject}
    assert released - set(acknowledged) == set(s["unarchived_passed_sequences"])
    withheld = [sequence for sequence, (_, verdict) in signalled.items()
                if verdict == reg.VERDICT_CODES["fault"] and sequence > max(acknowledged)]
    assert withheld and all(sequence < withheld[0] for sequence in s["unarchived_passed_sequences"])

    subprocess.run(["mount", "-o", "remount,size=16m", str(volume)], check=True)  # space returns
    # Restart after the cleanup (on the simulated rejector: the PLC's part was checked above).
    restart = write_config(tmp_path / "restart.yaml", bundle=str(passing_bundle), station={"lot": "DF", "id": "st"},
                           source=small_line(), archive={"path": str(archive), "pass_sample_every": 1})
    after = cli("station", "run", str(restart), "--frames", "10", "--json")
    assert after.returncode == 0, after.stderr
    r = json.loads(after.stdout)
    assert r["recovered_in_flight"] == {"lot": "DF", "sequences": s["unarchived_sequences"]}
    assert f"warning: {len(s['unarchived_sequences'])} items of lot DF" in after.stderr
    records = _records(archive)
    assert list(records) == list(range(1, s["frames"] + 11))  # every number exactly once
    assert {seq: records[seq] for seq in acknowledged} == acknowledged  # no acknowledged record lost or changed
    assert cli("audit", "verify", str(archive)).returncode == 0


def test_read_only_archive_volume_refuses_to_start(tiny_bundle, tmp_path):
    volume = tmp_path / "ro"
    _mount_tmpfs(volume, "size=1m,ro")
    try:
        result = cli("station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--frames", "5",
                     "--archive", str(volume / "arch"))
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)
    assert result.returncode == 2 and "Read-only file system" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("policy", ["stop_line", "alarm"])
def test_archive_turning_read_only_mid_run_follows_the_policy_and_releases_nothing_after(passing_bundle, tmp_path, monkeypatch,
                                                                                        live_pipeline, policy):
    monkeypatch.setattr(runner, "RAW_FPS_SECONDS", 0.1)
    real_write = store._write_file_durably
    at_failure: dict[str, int] = {}

    def write_until_read_only(path, data):
        # From the 60th item on, the volume is read-only under the station (e.g. ext4 errors=remount-ro):
        # the next commit's chain_head (and any new image) cannot be written.
        if live_pipeline and live_pipeline[0].tally.frames >= 60:
            # Records reach the writer in sequence order, each after its item was signalled.
            at_failure.setdefault("submitted", live_pipeline[0].tally.archived_submitted)
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_write(path, data)

    monkeypatch.setattr(store, "_write_file_durably", write_until_read_only)
    archive = tmp_path / "arch"
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(passing_bundle), station={"lot": "RO", "id": "st"},
        source=small_line(rate_hz=200.0), gate={"transport_delay_ms": 50},
        archive={"path": str(archive), "pass_sample_every": 1, "on_failure": policy},
    ))
    s = run_station(config, RunLimits(frames=300), progress=False)
    assert "Read-only file system" in s["archive_failure"]
    assert any(a.startswith("archive:") for a in s["alarms"])
    assert (s["frames"] < 300) if policy == "stop_line" else (s["frames"] == 300)
    assert s["balanced"] and s["audit_verified"]
    committed = archived_sequences(archive, "RO", "st")
    assert committed == list(range(1, s["archived"] + 1))
    assert s["unarchived_sequences"] == list(range(s["archived"] + 1, s["frames"] + 1))
    # From the failure on, the gate rejects every pass (a fault): only passes it published before the
    # station knew are out without a record, and the run names them.
    held_back = live_pipeline[0].backlog  # the records of items that reached the gate after the failure
    withheld = [r.sequence for r in held_back if r.reason.startswith("pass withheld, rejected: the archive failed")]
    released = s["unarchived_passed_sequences"]
    assert withheld, "the items in transit at the failure, nearly all good, should have been withheld"
    assert all(sequence < withheld[0] for sequence in released)
    # Released: the passes whose records the writer still held when the volume failed (as many as it
    # lagged behind: on a busy CI machine once 90), and the item or two the
    # gate signalled while the writer's failure reached it. None signalled after.
    assert all(sequence <= at_failure["submitted"] + 3 for sequence in released), (released, at_failure)
    assert not [r.sequence for r in held_back if r.verdict == "pass" and r.sequence > withheld[0]]
    if policy == "alarm":  # the line ran on: about 240 more items, nearly all good, none released
        assert len(withheld) > 100


def _cli(*args: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=300)


def test_training_onto_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(tmp_path, volume):
    from helpers.images import make_two_class_dataset

    data = make_two_class_dataset(tmp_path / "data", per_class=4, size_px=32)
    result = _cli("train", str(data), "--out", str(volume / "b"), "--epochs", "1", "--image-size", "32")
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # the epoch's progress line, then the error
    errors = [line for line in lines if line.startswith("error: ")]
    assert result.returncode == 2 and errors == lines[-1:] and "disk full or not writable" in errors[0], result.stderr
    assert not list(volume.rglob("*.tmp")) and not (volume / "b").exists()


def test_a_manifest_onto_a_full_disk_names_the_manifest_and_leaves_no_temp_file(tmp_path, volume):
    from helpers.images import make_two_class_dataset

    data = make_two_class_dataset(tmp_path / "data", per_class=40, size_px=32)
    (volume / "filler").write_bytes(b"\0" * (volume_free_bytes(volume) - 512))
    result = _cli("data", "index", str(data), "--out", str(volume / "m.jsonl"))
    assert result.returncode == 2 and "m.jsonl" in result.stderr and ".tmp" not in result.stderr, result.stderr
    assert not (volume / "m.jsonl.tmp").exists() and not (volume / "m.jsonl").exists()


def volume_free_bytes(path) -> int:
    import os

    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
