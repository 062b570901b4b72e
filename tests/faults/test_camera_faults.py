"""Camera faults: frames that stop, arrive corrupt or truncated, or change size mid-run.

Affected items must be faults (rejected), the line alarmed, the source reconnected, and the counts
must balance, with one archived record per item. Sources are real: folder replay of broken files
through the CLI, and pylon's camera emulator (PYLON_CAMEMU) driven from a second thread.
"""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest

import station.runner as runner
from station.archive import Archive
from station.config import load_station_config
from station.pipeline import UNUSABLE_FRAME_ALARM
from station.runner import RunLimits, run_station
from helpers.faults import archived_sequences, cli, write_config
from helpers.pylon import emulator_present

WIDTH_PX, HEIGHT_PX = 64, 48


def _png_bytes(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def test_replayed_corrupt_truncated_empty_and_tiny_frames_are_faults(tiny_bundle, tmp_path):
    rng = np.random.default_rng(1)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(10):
        (frames / f"{i:02d}_good.png").write_bytes(_png_bytes(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)))
    whole = _png_bytes(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    broken = {
        "03_truncated.png": whole[: len(whole) * 9 // 10],  # a transfer cut short: the last rows are missing
        "05_garbage.png": b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "07_empty.png": b"",
        "08_tiny.png": _png_bytes(np.zeros((1, 1, 3), np.uint8)),
    }
    for name, data in broken.items():
        (frames / name).write_bytes(data)
    config = write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "L1", "id": "replay"},
                          source={"kind": "folder", "path": str(frames)},
                          archive={"path": str(tmp_path / "arch"), "pass_sample_every": 1})
    result = cli("station", "run", str(config), "--json")
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["frames"] == 14 and s["balanced"] and s["corrupt_frames"] == len(broken)
    assert UNUSABLE_FRAME_ALARM in s["alarms"]
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = list(archive.records("L1"))
    assert [r["sequence"] for r in records] == list(range(1, 15))
    faulted = {r["reason"].split("/")[-1].split(" ")[0] for r in records if r["verdict"] == "fault"}
    assert set(broken) <= faulted, faulted
    assert cli("audit", "verify", str(tmp_path / "arch")).returncode == 0


# ---------------------------------------------------------------------------------------------- pylon

try:
    from pypylon import pylon
except ImportError:  # the replay test above still runs without pypylon
    pylon = None

needs_emulator = pytest.mark.skipif(pylon is None or not emulator_present(), reason="pypylon or its camera emulator is missing")


@pytest.fixture
def camera_station(tiny_bundle, tmp_path, monkeypatch, live_source, live_pipeline):
    """Run a pylon-emulator station for `frames` items while `fault(source)` runs once `after` frames are in."""
    monkeypatch.setattr(runner, "RAW_FPS_SECONDS", 0.1)  # the comparison figure is not under test here
    images = tmp_path / "images"
    images.mkdir()
    ramp = (np.arange(WIDTH_PX * HEIGHT_PX) % 251).astype(np.uint8).reshape(HEIGHT_PX, WIDTH_PX)
    cv2.imwrite(str(images / "a.png"), ramp)
    archive = tmp_path / "arch"

    def run(frames: int, after: int, fault, batching: dict | None = None, **source) -> dict:
        config = load_station_config(write_config(
            tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "CAM", "id": "cam-1"},
            source={"kind": "pylon", "emulator_images": str(images), "frame_rate_hz": 100.0, "grab_timeout_ms": 200,
                    **source},
            gate={"transport_delay_ms": 400}, archive={"path": str(archive), "pass_sample_every": 1},
            batching=batching or {},
        ))
        errors: list[BaseException] = []

        def inject() -> None:
            try:
                while not live_source or live_source[0]._delivered < after:
                    time.sleep(0.005)
                with live_source[0]._lock:  # between two reads, as a cable pull or an operator would
                    fault(live_source[0])
            except BaseException as exc:  # reported by the test, not lost in a thread
                errors.append(exc)

        thread = threading.Thread(target=inject)
        thread.start()
        summary = run_station(config, RunLimits(frames=frames), progress=False)
        thread.join(5)
        assert not errors, errors
        assert summary["frames"] == frames and summary["balanced"] and summary["audit_verified"]
        assert archived_sequences(archive, "CAM", "cam-1") == list(range(1, frames + 1))
        with Archive.open(archive, create=False) as opened:
            summary["records"] = list(opened.records("CAM"))
        summary["source"] = live_source[0]
        return summary

    return run


@needs_emulator
@pytest.mark.parametrize("batching", [{}, {"prepare_processes": 1}])
def test_camera_removed_mid_run_faults_the_gap_alarms_and_reconnects(camera_station, batching):
    s = camera_station(60, 20, lambda source: source.camera.FirePnPCallback.Execute(), batching)
    if batching:  # the camera copied each grab into shared memory, and the worker read it there
        assert s["preparation"]["frames_copied"] == 0
        assert s["preparation"]["frames_read_in_place"] == 60 - s["corrupt_frames"]
    assert s["source"].reconnects == 1
    lost = [r for r in s["records"] if r["verdict"] == "fault" and "camera disconnected" in r["reason"]]
    assert len(lost) == 1 and lost[0]["sequence"] > 20
    assert s["fault"] >= 1 and s["corrupt_frames"] >= 1
    assert any("disconnected (device removed)" in a for a in s["alarms"])
    assert any("reconnected after" in a for a in s["alarms"])
    assert s["records"][-1]["verdict"] != "fault"  # frames flow again after the reconnect


@needs_emulator
def test_camera_that_stops_delivering_gives_timeout_faults_then_recovers(camera_station):
    def stall(source) -> None:
        # Longer than grab_timeout_ms, so the station sees the camera go quiet for several periods.
        source.camera.AcquisitionFrameRate.Value = 1.5

    s = camera_station(40, 10, stall)
    timeouts = [r for r in s["records"] if "camera timeout" in r["reason"]]
    assert len(timeouts) >= 1 and all(r["verdict"] == "fault" for r in timeouts)
    assert UNUSABLE_FRAME_ALARM in s["alarms"]
    assert s["passed"] + s["rejected"] + s["uncertain"] == 40 - s["fault"]


@needs_emulator
def test_corrupt_buffers_from_the_camera_are_faults(camera_station):
    def corrupt(source) -> None:
        source.camera.ForceFailedBufferCount.Value = 3
        source.camera.ForceFailedBuffer.Execute()

    s = camera_station(40, 10, corrupt)
    failed = [r for r in s["records"] if "grab failed" in r["reason"]]
    assert len(failed) == 3 and all(r["verdict"] == "fault" for r in failed)
    assert s["corrupt_frames"] == 3 and UNUSABLE_FRAME_ALARM in s["alarms"]


@needs_emulator
def test_resolution_change_mid_run_faults_every_changed_frame(camera_station):
    def shrink(source) -> None:
        camera = source.camera
        camera.StopGrabbing()
        camera.Width.Value = WIDTH_PX // 2
        camera.StartGrabbing(pylon.GrabStrategy_OneByOne)

    s = camera_station(40, 10, shrink)
    changed = [r for r in s["records"] if "resolution changed" in r["reason"]]
    assert changed and all(r["verdict"] == "fault" for r in changed)
    assert changed[0]["sequence"] > 10 and [r["sequence"] for r in changed] == list(range(changed[0]["sequence"], 41))
    assert f"frame is {WIDTH_PX // 2}x{HEIGHT_PX} px" in changed[0]["reason"]
    assert any(a.startswith("camera: resolution changed") for a in s["alarms"])
