"""End-to-end station throughput against the raw backend: the synthetic line, unpaced, no archive."""

from __future__ import annotations

import os
from pathlib import Path

from inspection.bundle import load_bundle
from station.config import StationConfig
from station.runner import RunLimits, open_station_backend, run_station


def measure_station(bundle: Path, backend: str, device: str, precision: str, max_batch: int, frames: int,
                    threads: int | None, prepare_threads: int = 1) -> dict:
    config = StationConfig.model_validate({
        "bundle": bundle,
        "backend": {"kind": backend, "device": device, "precision": precision, "threads": threads},
        "source": {"kind": "synthetic", "defect_rate": 0.02, "seed": 11},
        "batching": {"max_batch": max_batch, "queue_size": max(64, 4 * max_batch), "prepare_threads": prepare_threads},
    })
    summary = run_station(config, RunLimits(frames=frames), progress=False)
    result = {
        "backend": backend, "device": device, "precision": precision, "max_batch": max_batch, "frames": summary["frames"],
        "throughput_fps": summary["throughput_fps"], "backend_raw_fps": summary["backend_raw_fps"],
        "throughput_vs_raw": summary["throughput_vs_raw"], "latency_ms": summary["latency_ms"],
        "mean_batch_size": summary.get("mean_batch_size"), "prepare_threads": prepare_threads,
        "description": summary["backend"],
    }
    if device == "cpu" and threads is None:
        # The station leaves cores to preparation; the model alone would take every core. Compare with
        # that too, so the ratio is not flattered by the station's own thread setting.
        all_cores = config.backend.model_copy(update={"threads": len(os.sched_getaffinity(0))})
        backend_all, raw_all_fps, _ = open_station_backend(config.model_copy(update={"backend": all_cores}), load_bundle(bundle))
        backend_all.close()
        result["backend_raw_fps_all_cores"] = raw_all_fps
        result["throughput_vs_all_cores_raw"] = summary["throughput_fps"] / max(raw_all_fps, summary["backend_raw_fps"])
    return result
