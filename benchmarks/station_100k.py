"""Zero loss over a long run: 100,000 frames of the synthetic line through the station with its archive.

    .venv/bin/python benchmarks/station_100k.py BUNDLE [--frames 100000] [--rate HZ] [--product NAME]

Checks what issue 3 asks of a long run: every frame has exactly one outcome, the archive holds one
record per frame and the image of every non-pass item, nothing is left unarchived, and
`audit verify` passes. Writes benchmarks/results/station_100k.json.
"""

from __future__ import annotations

import sys
import argparse
import json
import tempfile
import time
from pathlib import Path

from station.archive import Archive, verify_archive
from station.config import StationConfig
from station.runner import RunLimits, run_station
from training.versions import library_versions, machine_description
from inspection.cli import run_guarded
from training.bench.result_file import write_result

LOT = "LOT-100K"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=None, help="items/s (default: as fast as the station can)")
    parser.add_argument("--product", default="mixed")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/station_100k.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive_path = Path(tmp) / "archive"
        config = StationConfig.model_validate({
            "station": {"id": "line-100k", "lot": LOT},
            "bundle": args.bundle,
            "backend": {"kind": "onnxruntime", "threads": 2},
            "source": {"kind": "synthetic", "rate_hz": args.rate, "defect_rate": 0.02, "product": args.product, "seed": 5,
                       "width_px": args.width, "height_px": args.height},
            "archive": {"path": archive_path},
        })
        started = time.perf_counter()
        summary = run_station(config, RunLimits(frames=args.frames), progress=True)
        seconds = time.perf_counter() - started
        with Archive.open(archive_path, create=False) as archive:
            records = list(archive.records(LOT))
        sequences = [r["sequence"] for r in records]
        non_pass = [r for r in records if r["verdict"] != "pass"]
        verify = verify_archive(archive_path)
        archive_bytes = sum(p.stat().st_size for p in archive_path.rglob("*") if p.is_file())
    outcomes = summary["passed"] + summary["rejected"] + summary["uncertain"] + summary["fault"]
    result = {
        "machine": machine_description(),
        "versions": library_versions(),
        "bundle": str(args.bundle),
        "product": args.product,
        "rate_hz": args.rate,
        "frame_px": [args.width, args.height],
        "frames": summary["frames"],
        "outcomes": outcomes,
        "verdicts": {k: summary[k] for k in ("passed", "rejected", "uncertain", "fault", "late")},
        "records": len(records),
        "sequences_complete": sequences == list(range(1, summary["frames"] + 1)),
        "non_pass_records": len(non_pass),
        "non_pass_without_image": sum(1 for r in non_pass if not r["image_sha256"]),
        "unarchived": summary["unarchived"],
        "lost_frames": summary["frames"] - outcomes,
        "audit_verified": verify.ok,
        "audit_records_checked": verify.records_checked,
        "audit_images_checked": verify.images_checked,
        "archive_mib": round(archive_bytes / 2**20, 1),
        "throughput_fps": summary["throughput_fps"],
        "latency_ms": summary["latency_ms"],
        "alarms": summary.get("alarms"),
        "escapes": summary.get("escapes"),
        "false_rejects": summary.get("false_rejects"),
        "seconds": round(seconds, 1),
    }
    write_result(args.out, result)
    print(json.dumps({k: result[k] for k in ("frames", "records", "lost_frames", "unarchived", "non_pass_without_image",
                                               "sequences_complete", "audit_verified", "throughput_fps")}))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
