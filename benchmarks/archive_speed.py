"""How fast the station's archive appends: records/s without an image, with 224x224 and 640x480 RGB.

Two ways: `Archive.append` (one transaction per record, the durable worst case) and `ArchiveWriter`
(the station's path: a thread that commits whatever is queued in one transaction). Every commit is
durable (SQLite synchronous=FULL, fsync of each PNG and of the chain_head file), so the disk's fsync
latency dominates; it is measured and reported beside the figures.

    python benchmarks/archive_speed.py [--records 200] [--dir /path/on/the/archive/disk]

Prints JSON and writes benchmarks/results/archive_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from station.archive import Archive, ArchiveWriter, ItemRecord, utc_now_iso  # noqa: E402
from inspection.cli import run_guarded  # noqa: E402
from training.bench.result_file import write_result  # noqa: E402

MAX_BATCH = 64  # the writer default
SIZES = {"no_image": None, "rgb_224x224": (224, 224), "rgb_640x480": (480, 640)}


def camera_like_image(shape_hw: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth scene plus sensor noise (sigma ~2 grey levels): compresses like a real frame, unlike pure noise."""
    rng = np.random.default_rng(seed)
    h, w = shape_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 120 + 60 * np.sin(xx / (w / 3.0) + seed) * np.cos(yy / (h / 2.0))
    channels = [base + 10 * c + rng.normal(0, 2, (h, w)) for c in range(3)]
    return np.clip(np.dstack(channels), 0, 255).astype(np.uint8)


def make_records(n: int, shape_hw: tuple[int, int] | None, lot: str) -> list[ItemRecord]:
    images = [camera_like_image(shape_hw, seed) for seed in range(8)] if shape_hw else [None]
    records = []
    for i in range(n):
        now = utc_now_iso()
        image = None if shape_hw is None else images[i % len(images)].copy()
        if image is not None:
            image[0, 0, 0] = i % 256  # distinct bytes per record: no dedup shortcut
            image[0, 1, 0] = i // 256
        records.append(
            ItemRecord(lot, "bench", i, now, now, now, "reject", "chip", "benchmark", (0.2, 0.8), ("good", "chip"), "ab" * 32, "v1", "bench", image=image)
        )
    return records


def bench_direct(root: Path, records: list[ItemRecord]) -> dict:
    with Archive.open(root) as archive:
        start = time.perf_counter()
        for record in records:
            archive.append(record)
        elapsed_s = time.perf_counter() - start
    return {"records_per_s": round(len(records) / elapsed_s, 1), "ms_per_record": round(1e3 * elapsed_s / len(records), 2)}


def bench_writer(root: Path, records: list[ItemRecord]) -> dict:
    writer = ArchiveWriter(root, max_queue=len(records) + 1, max_batch=MAX_BATCH)
    writer.start()
    start = time.perf_counter()
    submit_s = []
    for record in records:
        t = time.perf_counter()
        writer.submit(record)
        submit_s.append(time.perf_counter() - t)
    writer.close(timeout_s=600)
    elapsed_s = time.perf_counter() - start
    assert writer.archived_count == len(records)
    return {
        "records_per_s": round(len(records) / elapsed_s, 1),
        "submit_us_median": round(1e6 * statistics.median(submit_s), 1),
    }


def fsync_latency_ms(directory: Path, n: int = 20) -> float:
    path = directory / "fsync_probe"
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with open(path, "wb") as handle:
            handle.write(b"x" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
        times.append(time.perf_counter() - start)
    path.unlink()
    return round(1e3 * statistics.median(times), 2)


def filesystem_of(path: Path) -> str:
    best, fs_type = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount_point, kind, *_ = line.split()
        if str(path.resolve()).startswith(mount_point) and len(mount_point) > len(best):
            best, fs_type = mount_point, kind
    return fs_type


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--machine", default=platform.node(), help="a name for this machine in the result file")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the scratch archives (the archive disk)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="archive_speed_", dir=args.dir))
    try:
        results = {}
        for name, shape in SIZES.items():
            records = make_records(args.records, shape, lot=name)
            results[name] = {
                "direct_append": bench_direct(scratch / f"direct_{name}", records),
                "archive_writer": bench_writer(scratch / f"writer_{name}", records),
            }
        payload = {
            "benchmark": "archive_speed",
            "created_utc": utc_now_iso(),
            "machine": {
                "name": args.machine, "hostname": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version, "filesystem": filesystem_of(scratch), "fsync_ms_median": fsync_latency_ms(scratch),
            },  # fmt: skip
            "records_per_case": args.records,
            "writer_max_batch": MAX_BATCH,
            "image": "camera-like synthetic RGB (smooth scene + sensor noise), PNG compression level 1",
            "results": results,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = json.dumps(payload, indent=2)
    print(text)
    out = REPO / "benchmarks" / "results" / "archive_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, payload)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
