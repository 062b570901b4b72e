"""The station end to end on real components: ONNX Runtime, the reject gate, the SQLite archive,
and (where named) a real Modbus TCP server on loopback."""

import gc
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from inspection.bundle import load_bundle
from inspection.errors import ConfigError, InspectionError
from inspection.preprocess import prepare
from station.archive import Archive, store, verify_archive
from station.config import StationConfig, load_station_config
from station.pipeline import StationPipeline
from station.prepare_processes import PreparerProcesses
from station.read_ahead import RATE_WINDOW_ITEMS
from station.runner import RunLimits, run_station
from station.shared_frames import NO_ROOM_FOR_FRAME
from station.signalling.thread_priority import check_realtime_allowed
from station.sources.replay import FolderReplaySource
from station.sources.synthetic_line import SyntheticLineSource
from helpers.images import write_png
from helpers.modbus_server import ModbusTestServer


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspection.cli", *args], capture_output=True, text=True, timeout=600)


def write_config(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(sections, default=str))))
    return path


def test_synthetic_line_counts_balance_and_archive_verifies(tiny_bundle, tmp_path):
    config = write_config(
        tmp_path / "station.yaml",
        bundle=str(tiny_bundle),
        station={"id": "line-1", "lot": "L42", "operator": "qa"},
        source={"kind": "synthetic", "defect_rate": 0.3, "pool_size": 16, "width_px": 160, "height_px": 120},
        archive={"path": str(tmp_path / "archive"), "pass_sample_every": 5},
    )
    result = cli("station", "run", str(config), "--frames", "200", "--json", "--latency-png", str(tmp_path / "latency.png"))
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["frames"] == 200 == s["passed"] + s["rejected"] + s["uncertain"] + s["fault"]
    assert s["audit_verified"] is True and s["unarchived"] == 0
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The tiny bundle learned from 64x64 frames; this line's camera gives 160x120.
    assert len(s["warnings"]) == 1 and "160x120 frames" in s["warnings"][0] and "trained on 64x64" in s["warnings"][0]
    assert "warning: the line delivers 160x120 frames" in result.stderr
    for key in ("throughput_fps", "backend_raw_fps", "latency_ms", "late", "escapes", "false_rejects", "backend"):
        assert key in s
    # The gate signal's lateness of the items decided in time; past the 20 ms window it is a missed gate.
    lateness = s["gate"]["signal_lateness_ms"]
    assert 0 <= lateness["p50"] <= lateness["max"] and (lateness["max"] > 20.0) == (s["gate"]["missed_gate"] > 0)
    assert 0 <= s["archive_queue_at_last_decision"] <= 200 and s["archive_drain_s"] >= 0
    with Archive.open(tmp_path / "archive", create=False) as archive:
        records = list(archive.records("L42"))
    non_pass = [r for r in records if r["verdict"] != "pass"]
    assert len(non_pass) == s["rejected"] + s["uncertain"] + s["fault"]  # every exception archived
    assert len(records) == s["archived"] == 200  # one record per item; pass images are sampled
    assert [r["sequence"] for r in records] == list(range(1, 201))
    assert all(r["image_sha256"] for r in non_pass) and all(r["bundle_hash"] == s["bundle_hash"] for r in records)
    passes = [r for r in records if r["verdict"] == "pass"]
    assert sum(1 for r in passes if r["image_sha256"]) == (len(passes) + 4) // 5  # every 5th pass, from the 1st
    verify = cli("audit", "verify", str(tmp_path / "archive"))
    assert verify.returncode == 0, verify.stderr
    report = cli("audit", "report", str(tmp_path / "archive"), "--lot", "L42", "--out", str(tmp_path / "report"))
    assert report.returncode == 0 and (tmp_path / "report" / "lot_L42.csv").is_file()


def tiny_line(bundle: Path, **sections) -> StationConfig:
    """A 64x64 synthetic line (the tiny bundle's own frame size) without archive, unless sections say otherwise."""
    return StationConfig.model_validate({
        "bundle": bundle, "archive": {"path": None},
        "source": {"kind": "synthetic", "pool_size": 8, "width_px": 64, "height_px": 64}, **sections,
    })


def test_a_line_with_the_training_frames_size_has_no_warning(tiny_bundle, tmp_path):
    config = tiny_line(tiny_bundle)
    assert run_station(config, RunLimits(frames=20), progress=False)["warnings"] == []


@pytest.mark.parametrize("batching", [{}, {"prepare_processes": 1}])
def test_folder_replay_faults_a_corrupt_frame_and_still_balances(tiny_bundle, tmp_path, batching):
    rng = np.random.default_rng(0)
    for i in range(12):
        size = (70, 90, 3) if i % 3 else (90, 120, 3)  # sizes mixed: shared frame buffers of two sizes
        write_png(tmp_path / "frames" / f"{i:03d}.png", rng.integers(0, 256, size, dtype=np.uint8))
    (tmp_path / "frames" / "005.png").write_bytes(b"\x89PNG truncated")
    config = load_station_config(write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle), batching=batching,
                                              source={"kind": "folder", "path": str(tmp_path / "frames")},
                                              archive={"path": str(tmp_path / "arch")}))
    s = run_station(config, RunLimits(), progress=False)
    assert s["frames"] == 12 and s["corrupt_frames"] == 1 and s["fault"] >= 1 and s["balanced"]
    if batching:  # decoded into shared memory: the preparer read every good frame in place
        assert s["preparation"]["frames_read_in_place"] == 11 and s["preparation"]["frames_copied"] == 0
    with Archive.open(tmp_path / "arch", create=False) as archive:
        faults = [r for r in archive.records() if r["verdict"] == "fault"]
    assert any("corrupt" in r["reason"] for r in faults)


def frames_each_of_its_own_size(folder: Path, count: int, seed: int) -> None:
    """`count` PNG frames, each of another size: every frame needs a new shared buffer."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        write_png(folder / f"{i:03d}.png", rng.integers(0, 256, (60 + i, 80, 3), dtype=np.uint8))


def dev_shm_full_after_frame_buffers(monkeypatch, bundle: Path, frame_buffers: int) -> None:
    """/dev/shm has room for this many frame buffers; the workers' prepared images always fit."""
    real_fallocate, reserved = os.posix_fallocate, []
    spec = load_bundle(bundle).meta.input
    prepared_bytes = spec.size_px * spec.size_px * spec.channels

    def fills_up(fd, offset, length):
        if length != prepared_bytes:
            if len(reserved) >= frame_buffers:
                raise OSError(28, "No space left on device")
            reserved.append(length)
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fills_up)


def test_dev_shm_filling_up_mid_run_faults_that_frame_and_ends_the_run_with_the_fix_every_item_recorded(tiny_bundle, tmp_path, monkeypatch):
    frames_each_of_its_own_size(tmp_path / "frames", 40, seed=1)
    dev_shm_full_after_frame_buffers(monkeypatch, tiny_bundle, 12)
    config = load_station_config(write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "SHM"},
                                              batching={"prepare_processes": 1},
                                              source={"kind": "folder", "path": str(tmp_path / "frames")},
                                              archive={"path": str(tmp_path / "arch"), "pass_sample_every": 1}))
    with pytest.raises(InspectionError, match=r"No space left on device\): free space in /dev/shm, or set "
                                              r"batching.prepare_processes to 0"):
        run_station(config, RunLimits(), progress=False)
    assert not any(t.name.startswith("replay-decode") for t in threading.enumerate())  # the failed run closed its source
    assert verify_archive(tmp_path / "arch").ok
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = list(archive.records("SHM"))
    sequences = [r["sequence"] for r in records]
    assert 0 < len(sequences) < 40 and sequences == list(range(1, len(sequences) + 1))
    # The file whose frame found no room was read: it is numbered, a fault with the reason, and the last.
    assert records[-1]["verdict"] == "fault" and NO_ROOM_FOR_FRAME in records[-1]["reason"]
    assert not any(NO_ROOM_FOR_FRAME in r["reason"] for r in records[:-1])


def test_a_run_ending_in_error_first_offers_the_records_held_back_for_a_full_archive_queue(tiny_bundle, tmp_path,
                                                                                          monkeypatch):
    frames_each_of_its_own_size(tmp_path / "frames", 30, seed=2)
    dev_shm_full_after_frame_buffers(monkeypatch, tiny_bundle, 20)
    real_write = store._write_file_durably

    def slow_disk(path, data):
        time.sleep(0.02)
        real_write(path, data)

    monkeypatch.setattr(store, "_write_file_durably", slow_disk)
    # A paced line with a queue of 2 on a slow disk: records wait in the pipeline's backlog (alarm, run on).
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "BL"}, batching={"prepare_processes": 1},
        source={"kind": "folder", "path": str(tmp_path / "frames"), "rate_hz": 200.0},
        archive={"path": str(tmp_path / "arch"), "pass_sample_every": 1, "max_queue": 2, "on_failure": "alarm"}))
    with pytest.raises(InspectionError, match="free space in /dev/shm"):
        run_station(config, RunLimits(), progress=False)
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = list(archive.records("BL"))
    # Every item numbered has its own record now, the no-room fault last: none is left to the next start.
    assert [r["sequence"] for r in records] == list(range(1, len(records) + 1)) and len(records) > 15
    assert NO_ROOM_FOR_FRAME in records[-1]["reason"]


def test_no_room_in_dev_shm_for_a_video_frame_copied_to_a_worker_faults_it_and_ends_the_run_with_the_fix(
        tiny_bundle, tmp_path, monkeypatch):
    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for i in range(10):
        writer.write(np.full((96, 96, 3), 20 * i, np.uint8))
    writer.release()
    real_fallocate = os.posix_fallocate

    def no_room_for_frames(fd, offset, length):
        if length == 96 * 96 * 3:  # a worker slot's frame buffer; the prepared images have their room
            raise OSError(28, "No space left on device")
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", no_room_for_frames)
    config = load_station_config(write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "SHM"},
                                              batching={"prepare_processes": 1},
                                              source={"kind": "opencv", "target": str(video)},
                                              archive={"path": str(tmp_path / "arch")}))
    with pytest.raises(InspectionError, match=r"No space left on device\): free space in /dev/shm"):
        run_station(config, RunLimits(), progress=False)
    with Archive.open(tmp_path / "arch", create=False) as archive:
        records = list(archive.records("SHM"))
    assert [r["sequence"] for r in records] == [1] and records[0]["verdict"] == "fault"
    assert "free space in /dev/shm" in records[0]["reason"]


def test_serving_preprocessing_equals_evaluation_bit_for_bit(tiny_bundle, tmp_path):
    from training.dataset_index import index_dataset
    from training.evaluate import load_prepared

    spec = load_bundle(tiny_bundle).meta.input
    data = tiny_bundle.parent / "data"
    entries = index_dataset(data, progress=False).split("test")
    evaluated = load_prepared(data, entries, spec)
    source = FolderReplaySource(data)
    source.open()
    served = {}
    for _ in range(len(source._paths)):
        frame = source.read()
        served[frame.item_key] = prepare(frame.image, spec)
    for entry, array in zip(entries, evaluated):
        assert np.array_equal(served[entry.path], array), entry.path


def test_modbus_plc_receives_every_result(tiny_bundle, tmp_path):
    server = ModbusTestServer()
    server.start()
    try:
        config = load_station_config(write_config(
            tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "LOT7", "recipe": "R1"},
            source={"kind": "synthetic", "rate_hz": 200, "pool_size": 8, "width_px": 96, "height_px": 96},
            gate={"transport_delay_ms": 100}, output={"kind": "modbus", "host": "127.0.0.1", "port": server.port},
        ))
        s = run_station(config, RunLimits(frames=60), progress=False)
    finally:
        server.stop()
    assert s["balanced"] and s["gate"]["published"] == 60 and s["gate"]["publish_failures"] == 0
    from station.signalling import register_map as rm

    assert server.registers(rm.RESULT_COUNTER)[0] >= 60
    sequences = [w.values[0] << 16 | w.values[1] for w in server.writes if w.address == rm.RESULT_SEQUENCE_HI]
    assert sequences == list(range(1, 61))


def test_tampered_bundle_refuses_to_start(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "bundle.json", "a") as handle:
        handle.write(" ")
    result = cli("station", "run", "--bundle", str(copy), "--source", "synthetic", "--frames", "5")
    assert result.returncode == 2 and "bundle.json" in result.stderr and "refuses to start" in result.stderr


def test_unreachable_plc_refuses_to_start(tiny_bundle, tmp_path):
    from helpers.modbus_server import free_port

    config = write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle),
                          output={"kind": "modbus", "host": "127.0.0.1", "port": free_port(), "timeout_s": 0.3})
    result = cli("station", "run", str(config), "--frames", "5")
    assert result.returncode == 2 and "not reachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unwritable_archive_refuses_to_start(tiny_bundle, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("station", "run", "--bundle", str(tiny_bundle), "--source", "synthetic", "--frames", "5",
                 "--archive", str(tmp_path / "file" / "archive"))
    assert result.returncode == 2 and "archive" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "sections, needle",
    [
        ({"sourse": {"kind": "synthetic"}}, "unknown key 'sourse'"),
        ({"source": {"kind": "synthetic", "rate_hz": -5}}, "rate_hz"),
        ({"source": {"kind": "webcam"}}, "source"),
        ({"batching": {"max_batch": 0}}, "max_batch"),
        ({"gate": {"transport_delay_ms": "soon"}}, "transport_delay_ms"),
        ({"backend": {"kind": "torch"}, "batching": {"inference_workers": 2}}, "inference_workers 2 needs backend.kind onnxruntime"),
        ({"batching": {"prepare_threads": 4, "prepare_processes": 4}}, "prepare_threads 4 and prepare_processes 4: choose one"),
    ],
)
def test_bad_config_is_one_line_exit_2(tiny_bundle, tmp_path, sections, needle):
    config = write_config(tmp_path / "s.yaml", bundle=str(tiny_bundle), **sections)
    result = cli("station", "run", str(config), "--frames", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "s.yaml" in lines[0]


def test_overrun_is_faulted_and_alarmed_never_dropped(tiny_bundle, tmp_path):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle),
        source={"kind": "synthetic", "rate_hz": 20000, "pool_size": 8, "width_px": 64, "height_px": 64},
        batching={"queue_size": 2, "max_batch": 1}, gate={"transport_delay_ms": 2000},
    ))
    s = run_station(config, RunLimits(frames=400), progress=False)
    assert s["frames"] == 400 and s["balanced"]
    assert s["overruns"] > 0 and s["fault"] >= s["overruns"]
    assert any("overrun" in alarm for alarm in s["alarms"])


def test_a_restarted_station_continues_the_sequence_and_the_chain(tiny_bundle, tmp_path):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "L1", "id": "cam-1"},
        source={"kind": "synthetic", "pool_size": 8, "width_px": 64, "height_px": 64, "defect_rate": 0.5},
        archive={"path": str(tmp_path / "arch"), "pass_sample_every": 1},
    ))
    first = run_station(config, RunLimits(frames=20), progress=False)
    second = run_station(config, RunLimits(frames=20), progress=False)
    assert first["audit_verified"] and second["audit_verified"]
    with Archive.open(tmp_path / "arch", create=False) as archive:
        sequences = [r["sequence"] for r in archive.records("L1")]
    assert sequences == list(range(1, 41))


def test_auto_backend_measures_and_picks_the_fastest(tiny_bundle, tmp_path):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), backend={"kind": "auto"},
        source={"kind": "synthetic", "pool_size": 8, "width_px": 64, "height_px": 64},
    ))
    s = run_station(config, RunLimits(frames=30), progress=False)
    measured = s["backend_choice"]["raw_fps_by_backend"]
    assert set(measured) == {"onnxruntime/fp32", "torch/fp32"}  # no TensorRT engine, no GPU here
    fastest = max(measured, key=measured.get)
    assert s["backend"].startswith(fastest.split("/")[0]) and s["backend_raw_fps"] == measured[fastest]


def test_metrics_endpoint_serves_counts_on_localhost(tiny_bundle, tmp_path):
    import threading
    import urllib.request

    from helpers.modbus_server import free_port

    port = free_port()
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), metrics={"enabled": True, "port": port},
        source={"kind": "synthetic", "rate_hz": 100, "pool_size": 8, "width_px": 64, "height_px": 64},
    ))
    scraped: list[str] = []

    def scrape() -> None:
        import time

        for _ in range(100):
            time.sleep(0.05)
            try:
                scraped.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode())
                return
            except OSError:
                continue

    thread = threading.Thread(target=scrape)
    thread.start()
    s = run_station(config, RunLimits(frames=150), progress=False)
    thread.join()
    assert s["balanced"] and scraped, "the metrics endpoint never answered during the run"
    text = scraped[0]
    assert "inspection_frames_total" in text and 'inspection_verdicts_total{verdict="pass"}' in text
    assert "inspection_latency_ms_bucket" in text and 'inspection_queue_depth{queue="inference"}' in text
    assert "inspection_gate_signal_lateness_ms_bucket" in text


@pytest.mark.parametrize("preparers", [{"prepare_threads": 3}, {"prepare_processes": 2}])
@pytest.mark.parametrize("rate_hz", [None, 300.0])
def test_a_pool_of_preparers_keeps_one_outcome_per_item_in_sequence(tiny_bundle, tmp_path, rate_hz, preparers):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "LP"},
        source={"kind": "synthetic", "rate_hz": rate_hz, "defect_rate": 0.3, "pool_size": 16, "width_px": 160, "height_px": 120},
        batching={"max_batch": 4, **preparers},
        archive={"path": str(tmp_path / "archive"), "pass_sample_every": 1},
    ))
    s = run_station(config, RunLimits(frames=150), progress=False)
    assert s["frames"] == 150 == s["passed"] + s["rejected"] + s["uncertain"] + s["fault"]
    assert s["audit_verified"] is True
    with Archive.open(tmp_path / "archive", create=False) as archive:
        records = list(archive.records("LP"))
    assert [r["sequence"] for r in records] == list(range(1, 151))
    if rate_hz is None:
        # Unpaced replay waits for room: nothing overruns. A machine starved by other work can still
        # decide an item after its deadline: that is a late fault (rejected), never a lost item or a pass.
        assert s["overruns"] == 0 and s["fault"] <= s["late"], (s["overruns"], s["fault"], s["late"], s["alarms"])
    if "prepare_threads" in preparers:
        assert s["preparation"] == {"threads": 3} and "handover" not in s["stage_ms"]
    else:  # the line's 16 pool items rendered into shared memory, every frame read there in place
        assert s["preparation"]["processes"] == 2 and s["preparation"]["shared_frame_buffers"] == 16
        assert s["preparation"]["frames_copied"] == 0
        # Paced, a frame with every slot busy is an overrun before it is handed over.
        assert 150 - s["overruns"] <= s["preparation"]["frames_read_in_place"] <= 150
        assert s["preparation"]["frames_read_in_place"] == 150 or rate_hz is not None
        # "prepare" is the worker's own time, as on a thread; "handover" adds the waits and the hand-back.
        assert s["stage_ms"]["prepare"]["p50"] < s["stage_ms"]["handover"]["p50"]


def test_preparer_processes_are_ready_before_the_camera_opens(tiny_bundle, tmp_path, monkeypatch):
    # A camera grabs from open(): frames that waited for the workers to start would reach the gate late.
    seen_at_open, real_open = [], SyntheticLineSource.open

    def open_and_look(source):
        seen_at_open.extend(child.name for child in multiprocessing.active_children())
        real_open(source)

    monkeypatch.setattr(SyntheticLineSource, "open", open_and_look)
    s = run_station(tiny_line(tiny_bundle, batching={"prepare_processes": 2}), RunLimits(frames=20), progress=False)
    assert sorted(name for name in seen_at_open if name.startswith("prepare-")) == ["prepare-1", "prepare-2"]
    assert s["frames"] == 20 and s["fault"] == 0
    assert not [child for child in multiprocessing.active_children() if child.name.startswith("prepare-")]  # closed


def test_a_preparer_process_that_dies_faults_its_items_and_stops_the_line(tiny_bundle, tmp_path, monkeypatch):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "LK"},
        source={"kind": "synthetic", "rate_hz": 200.0, "defect_rate": 0.3, "pool_size": 16, "width_px": 160, "height_px": 120},
        batching={"max_batch": 4, "prepare_processes": 2},
        archive={"path": str(tmp_path / "archive"), "pass_sample_every": 1},
    ))
    submitted, real_submit = [], PreparerProcesses.submit

    def submit_and_kill_the_first_worker_at_the_100th(preparers, image, on_done, wait):
        submitted.append(True)
        if len(submitted) == 100:
            os.kill(preparers._processes[0].pid, signal.SIGKILL)
        return real_submit(preparers, image, on_done, wait)

    monkeypatch.setattr(PreparerProcesses, "submit", submit_and_kill_the_first_worker_at_the_100th)
    s = run_station(config, RunLimits(frames=2000), progress=False)
    assert 0 < s["frames"] < 2000  # stopped, not run to the end
    assert s["frames"] == s["passed"] + s["rejected"] + s["uncertain"] + s["fault"] and s["fault"] >= 1
    assert any(alarm.startswith("station: preparer process 1 stopped (exit code -9); restart the station; line stopped")
               for alarm in s["alarms"]), s["alarms"]
    with Archive.open(tmp_path / "archive", create=False) as archive:
        records = list(archive.records("LK"))
    assert [r["sequence"] for r in records] == list(range(1, s["frames"] + 1))
    assert any(r["verdict"] == "fault" and "preparer process 1 stopped" in r["reason"] for r in records)


def test_unpaced_replay_waits_for_a_slow_archive_instead_of_stopping(tiny_bundle, tmp_path):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "LW"},
        source={"kind": "synthetic", "defect_rate": 0.5, "pool_size": 16, "width_px": 160, "height_px": 120},
        gate={"transport_delay_ms": 20}, batching={"max_batch": 4},
        archive={"path": str(tmp_path / "archive"), "pass_sample_every": 1, "max_queue": 8},
    ))
    s = run_station(config, RunLimits(frames=300), progress=False)
    assert s["frames"] == 300 and s["unarchived"] == 0 and s["audit_verified"] is True
    assert not any(alarm.startswith("archive") for alarm in s["alarms"])
    with Archive.open(tmp_path / "archive", create=False) as archive:
        assert [r["sequence"] for r in archive.records("LW")] == list(range(1, 301))


def test_a_full_archive_queue_stops_a_paced_line_and_keeps_records_in_order(tiny_bundle, tmp_path):
    config = load_station_config(write_config(
        tmp_path / "s.yaml", bundle=str(tiny_bundle), station={"lot": "LQ"},
        source={"kind": "synthetic", "rate_hz": 2000, "defect_rate": 0.5, "pool_size": 16, "width_px": 320, "height_px": 240},
        archive={"path": str(tmp_path / "archive"), "pass_sample_every": 1, "max_queue": 1},
    ))
    s = run_station(config, RunLimits(frames=400), progress=False)
    assert any(alarm.startswith("archive") for alarm in s["alarms"]), s["alarms"]  # the line was stopped
    assert s["frames"] == s["passed"] + s["rejected"] + s["uncertain"] + s["fault"] and s["unarchived"] == 0
    with Archive.open(tmp_path / "archive", create=False) as archive:
        assert [r["sequence"] for r in archive.records("LQ")] == list(range(1, s["frames"] + 1))
    assert verify_archive(tmp_path / "archive").ok


def test_the_line_runs_with_the_start_up_objects_out_of_the_collectors_reach(tiny_bundle, monkeypatch):
    # A full collection over them held the GIL for 45 ms on 2 cores: ~20 items in a row missed the gate.
    frozen_during_run = []
    original_run = StationPipeline.run

    def run_and_note(self, duration_s=None):
        frozen_during_run.append(gc.get_freeze_count())
        return original_run(self, duration_s)

    monkeypatch.setattr(StationPipeline, "run", run_and_note)
    assert run_station(tiny_line(tiny_bundle), RunLimits(frames=20), progress=False)["frames"] == 20
    assert frozen_during_run[0] > 1000 and gc.get_freeze_count() == 0


def test_a_terminal_shows_a_live_status_line_with_the_counts(tiny_bundle, monkeypatch):
    import io

    from rich.console import Console

    import station.runner as runner_module

    screen = io.StringIO()
    monkeypatch.setattr(runner_module, "stderr_console", Console(file=screen, force_terminal=True, width=200))
    line = tiny_line(tiny_bundle, source={"kind": "synthetic", "rate_hz": 100, "pool_size": 8, "width_px": 64, "height_px": 64})
    summary = run_station(line, RunLimits(frames=100), progress=True)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # without the terminal's control codes
    assert summary["frames"] == 100 and "frames " in shown and "  pass " in shown and "  alarms " in shown
    # Refreshed while the line ran (4 times a second over about a second), not only drawn once.
    assert len(set(re.findall(r"frames (\d+)", shown))) >= 2


def test_a_station_with_a_realtime_gate_runs_and_says_so(tiny_bundle):
    try:
        check_realtime_allowed()
    except ConfigError:
        pytest.skip("needs root or CAP_SYS_NICE (CI runs as root)")
    summary = run_station(tiny_line(tiny_bundle, gate={"thread_priority": "realtime"}), RunLimits(frames=20), progress=False)
    assert summary["frames"] == 20 == summary["passed"] + summary["rejected"] + summary["uncertain"] + summary["fault"]
    assert summary["gate_thread_priority"] == "realtime"


def test_a_station_that_fails_after_its_archive_started_stops_the_archive_writer(tiny_bundle, tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        raise RuntimeError("the pipeline could not be built")

    monkeypatch.setattr(StationPipeline, "__init__", fail)
    with pytest.raises(RuntimeError, match="could not be built"):
        run_station(tiny_line(tiny_bundle, archive={"path": tmp_path / "archive"}), RunLimits(frames=5), progress=False)
    assert not [t for t in threading.enumerate() if t.name == "archive-writer"]


class ConcurrentCalls:
    """Wraps OnnxRuntimeBackend.infer to note, per kind of calling thread, the most calls at once."""

    def __init__(self, monkeypatch) -> None:
        from inspection.backends.onnxruntime_backend import OnnxRuntimeBackend

        self.most: dict[str, int] = {}
        self._now: dict[str, int] = {}
        self._lock = threading.Lock()
        original = OnnxRuntimeBackend.infer

        def infer(backend, batch):
            kind = threading.current_thread().name.rsplit("-", 1)[0]  # "inference", "raw" (or the warm-up's)
            with self._lock:
                self._now[kind] = self._now.get(kind, 0) + 1
                self.most[kind] = max(self.most.get(kind, 0), self._now[kind])
            try:
                time.sleep(0.003)  # long enough for the other worker's call to begin meanwhile
                return original(backend, batch)
            finally:
                with self._lock:
                    self._now[kind] -= 1

        monkeypatch.setattr(OnnxRuntimeBackend, "infer", infer)


@pytest.mark.parametrize("configured, expected_workers", [(None, 2), (1, 1)])
def test_onnxruntime_inference_workers_run_batches_side_by_side(tiny_bundle, monkeypatch, configured, expected_workers):
    calls = ConcurrentCalls(monkeypatch)
    summary = run_station(tiny_line(tiny_bundle, batching={"inference_workers": configured, "max_batch": 2}),
                          RunLimits(frames=300), progress=False)
    assert summary["frames"] == 300 == summary["passed"] + summary["rejected"] + summary["uncertain"] + summary["fault"]
    assert summary["fault"] == 0 and summary["inference_workers"] == expected_workers
    # The run's workers overlapped, and the raw figure was measured the same way.
    assert (calls.most["inference"], calls.most["raw"]) == (expected_workers, expected_workers)
    if configured is None:  # each of the 2 default workers gets its share of the cores
        assert f", {max(1, len(os.sched_getaffinity(0)) // 2)} threads" in summary["backend"]


def _count_undecided_at_each_read(monkeypatch) -> list[tuple[int, int]]:
    """(items decided so far, items undecided) as each item is read from the synthetic line."""
    from station.sources.synthetic_line import SyntheticLineSource

    counts = {"read": 0, "decided": 0}
    at_read: list[tuple[int, int]] = []
    original_read, original_note_decided = SyntheticLineSource.read, StationPipeline._note_decided

    def read(source):
        frame = original_read(source)
        counts["read"] += 1
        at_read.append((counts["decided"], counts["read"] - counts["decided"]))
        return frame

    lock = threading.Lock()

    def note_decided(pipeline, count):
        with lock:  # two inference workers decide; counted before the items' places are freed
            counts["decided"] += count
        original_note_decided(pipeline, count)

    monkeypatch.setattr(SyntheticLineSource, "read", read)
    monkeypatch.setattr(StationPipeline, "_note_decided", note_decided)
    return at_read


def test_unpaced_replay_reads_ahead_at_most_a_batch_per_worker_and_one_gathering(tiny_bundle, monkeypatch):
    # More would only wait in a queue: latency that, past the gate's transport delay, faults items.
    ConcurrentCalls(monkeypatch)  # slows each batch down, so the camera side runs ahead if it may
    at_read = _count_undecided_at_each_read(monkeypatch)
    summary = run_station(tiny_line(tiny_bundle, batching={"max_batch": 3}), RunLimits(frames=120), progress=False)
    assert summary["frames"] == 120 == summary["passed"] + summary["rejected"] + summary["uncertain"] + summary["fault"]
    assert summary["inference_workers"] == 2 and max(undecided for _, undecided in at_read) == (2 + 1) * 3


def test_unpaced_replay_reads_ahead_no_more_than_it_decides_in_half_the_transport_delay(tiny_bundle, monkeypatch):
    # A model too slow for three batches to wait within the gate's delay: each batch of 4 takes at
    # least 30 ms, so 2 workers decide at most 267 items/s, 8 in the 30 ms that half a 60 ms delay leaves.
    from inspection.backends.onnxruntime_backend import OnnxRuntimeBackend

    original_infer = OnnxRuntimeBackend.infer

    def slow_infer(backend, batch):
        time.sleep(0.030)
        return original_infer(backend, batch)

    monkeypatch.setattr(OnnxRuntimeBackend, "infer", slow_infer)
    at_read = _count_undecided_at_each_read(monkeypatch)
    summary = run_station(tiny_line(tiny_bundle, batching={"max_batch": 4}, gate={"transport_delay_ms": 60}),
                          RunLimits(frames=400), progress=False)
    assert summary["frames"] == 400 and summary["inference_workers"] == 2
    assert max(undecided for _, undecided in at_read) == 12  # three batches, until the rate was measured
    assert max(undecided for decided, undecided in at_read if decided >= 3 * RATE_WINDOW_ITEMS) <= 8


@pytest.mark.timeout(180)  # a station that kept its lent images would wait for free ones for ever
@pytest.mark.parametrize("batching", [{"max_batch": 4}, {"max_batch": 4, "prepare_processes": 2}])
def test_a_batch_the_model_fails_on_is_faulted_never_passed_and_the_line_goes_on(tiny_bundle, tmp_path, monkeypatch, batching):
    from inspection.backends.onnxruntime_backend import OnnxRuntimeBackend
    from station.prepare_processes import PreparedImage

    real_infer_images, calls, failed_items = OnnxRuntimeBackend.infer_images, [0], []

    def infer_images_failing_twice(backend, images):
        calls[0] += 1
        if calls[0] in (2, 3):
            failed_items.append(len(images))
            raise RuntimeError("the GPU fell off the bus")
        return real_infer_images(backend, images)

    monkeypatch.setattr(OnnxRuntimeBackend, "infer_images", infer_images_failing_twice)
    # Every image a preparer process lends comes back, from the batches that failed too.
    lent, released, real_init, real_release = [0], [0], PreparedImage.__init__, PreparedImage.release

    def lend(image, *args):
        lent[0] += 1
        real_init(image, *args)

    def release(image):
        released[0] += image._give_back is not None
        real_release(image)

    monkeypatch.setattr(PreparedImage, "__init__", lend)
    monkeypatch.setattr(PreparedImage, "release", release)
    config = tiny_line(tiny_bundle, batching=batching, station={"lot": "LF"},
                       archive={"path": str(tmp_path / "archive"), "pass_sample_every": 1})
    s = run_station(config, RunLimits(frames=120), progress=False)
    assert s["frames"] == 120 == s["passed"] + s["rejected"] + s["uncertain"] + s["fault"]
    assert s["audit_verified"] is True
    with Archive.open(tmp_path / "archive", create=False) as archive:
        records = list(archive.records("LF"))
    failed = [r for r in records if r["reason"] == "inference failed: RuntimeError: the GPU fell off the bus"]
    assert len(failed) == sum(failed_items) > 0 and {r["verdict"] for r in failed} == {"fault"}
    assert any(alarm.startswith("model: inference failed") for alarm in s["alarms"])
    after = [r for r in records if r["sequence"] > max(r["sequence"] for r in failed)]
    assert {r["verdict"] for r in after} - {"fault"}, "the line did not go on deciding after the failures"
    assert lent[0] == released[0] == (120 if "prepare_processes" in batching else 0)
