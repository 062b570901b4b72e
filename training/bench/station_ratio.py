"""End-to-end station throughput against the raw backend: the synthetic line, unpaced, no archive."""

from __future__ import annotations

from pathlib import Path

from station.config import StationConfig
from station.runner import RunLimits, run_station


def measure_station(bundle: Path, backend: str, device: str, precision: str, max_batch: int, frames: int,
                    threads: int | None, preparation: dict | None = None) -> dict:
    """`preparation`: the batching settings that say who prepares frames, e.g. {"prepare_processes": 8}."""
    config = StationConfig.model_validate({
        "bundle": bundle,
        "backend": {"kind": backend, "device": device, "precision": precision, "threads": threads},
        "source": {"kind": "synthetic", "defect_rate": 0.02, "seed": 11},
        "batching": {"max_batch": max_batch, "queue_size": max(64, 4 * max_batch), **(preparation or {})},
    })
    summary = run_station(config, RunLimits(frames=frames), progress=False)
    return {
        "backend": backend, "device": device, "precision": precision, "max_batch": max_batch, "frames": summary["frames"],
        "throughput_fps": summary["throughput_fps"], "backend_raw_fps": summary["backend_raw_fps"],
        "throughput_vs_raw": summary["throughput_vs_raw"], "latency_ms": summary["latency_ms"],
        "mean_batch_size": summary.get("mean_batch_size"), "preparation": summary["preparation"],
        "inference_workers": summary["inference_workers"],
        "description": summary["backend"],
    }
