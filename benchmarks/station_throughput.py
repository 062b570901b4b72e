"""Station end-to-end throughput against the raw backend, and latency at a line rate.

    .venv/bin/python benchmarks/station_throughput.py BUNDLE [--frames N] [--product NAME] [--threads N] [--out FILE]

Runs of the synthetic line (640x480 camera-like frames from memory, 2% defects):
  1. unpaced, no archive: the pipeline alone; throughput_fps / backend_raw_fps is the target ratio;
  2. unpaced, default archive policy (every exception and every 100th pass);
  3. paced at 100 items/s with the archive: capture-to-decision latency percentiles.
The archive writes one lossless 640x480 PNG per exception (about 20/s on 2 cores), so a model that
rejects much more than the line's defect rate makes run 2 archive-bound. `--product` sets the line's
product (default `mixed`); a bundle trained on one product belongs on a line of that product.
`--threads` sets the station's model threads (default: unset, ONNX Runtime's own, every core).
"""

from __future__ import annotations

import sys
import argparse
import json
import os
import tempfile
from pathlib import Path

from inspection.backends import open_backend
from inspection.bundle import load_bundle
from station.config import StationConfig
from station.runner import RunLimits, measure_raw_fps, run_station
from training.versions import library_versions, machine_description
from inspection.cli import run_guarded

KEYS = ("frames", "passed", "rejected", "uncertain", "fault", "late", "archived", "unarchived", "throughput_fps",
        "backend_raw_fps", "throughput_vs_raw", "latency_ms", "stage_ms", "mean_batch_size", "backend", "audit_verified",
        "overruns", "escapes", "false_rejects")


def run(bundle: Path, frames: int, rate_hz: float | None, archive: Path | None, product: str = "mixed",
        threads: int | None = None) -> dict:
    config = StationConfig.model_validate({
        "bundle": bundle,
        "backend": {"kind": "onnxruntime", "threads": threads},
        "source": {"kind": "synthetic", "rate_hz": rate_hz, "defect_rate": 0.02, "seed": 11, "product": product},
        "archive": {"path": archive},
    })
    summary = run_station(config, RunLimits(frames=frames), progress=False)
    result = {k: summary.get(k) for k in KEYS}
    # The raw model on every core too, with and without ONNX Runtime's spin-waiting (its default), and
    # compare the station with the best of all, so the ratio is not flattered by the station's setting.
    loaded = load_bundle(bundle)
    for key, spin_wait in (("backend_raw_fps_all_cores", False), ("backend_raw_fps_spin_wait", True)):
        backend = open_backend("onnxruntime", loaded, threads=len(os.sched_getaffinity(0)), spin_wait=spin_wait)
        result[key] = measure_raw_fps(backend, loaded, config.batching.max_batch)
        backend.close()
    best_raw = max(result["backend_raw_fps"], result["backend_raw_fps_all_cores"], result["backend_raw_fps_spin_wait"])
    result["throughput_vs_best_raw"] = result["throughput_fps"] / best_raw
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--product", default="mixed")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/station_cpu.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        unpaced = run(args.bundle, args.frames, None, None, args.product, args.threads)
        archived = run(args.bundle, args.frames // 5, None, Path(tmp) / "a", args.product, args.threads)
        paced = run(args.bundle, min(args.frames, 1500), 100.0, Path(tmp) / "b", args.product, args.threads)
    result = {"machine": machine_description(), "versions": library_versions(), "bundle": str(args.bundle),
              "product": args.product, "threads": args.threads,
              "unpaced_no_archive": unpaced, "unpaced_with_archive": archived, "paced_100hz_with_archive": paced}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"throughput_vs_raw": unpaced["throughput_vs_raw"], "throughput_vs_best_raw": unpaced["throughput_vs_best_raw"],
                      "throughput_fps": unpaced["throughput_fps"], "backend_raw_fps": unpaced["backend_raw_fps"],
                      "backend_raw_fps_all_cores": unpaced["backend_raw_fps_all_cores"],
                      "backend_raw_fps_spin_wait": unpaced["backend_raw_fps_spin_wait"], "p99_ms_at_100hz": paced["latency_ms"]["p99"]}))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
