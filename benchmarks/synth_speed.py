"""How fast the synthetic tablet generator is on this machine.

Measures, at 224 px unless told otherwise:
- render_one_core: `render_item` in this process, one image after another (what a caller gets);
- render_parallel: rendering only, in one spawned worker per core (what write_dataset can reach);
- write_dataset: the real thing, PNG encoding and writing included, from the call to the rename
  (stored PNG, the default; write_dataset_png_level_1: the same at zlib level 1);
- render_640x480_one_core: the station camera stream's frame size.
All of them for `mixed` (every image a random product); `--product NAME` (repeatable) measures a
named product of inspection.synthetic.products as well, under "products" in the result.

Each is repeated (--repeats, default 3) and reported as best and median: the development
machine is shared and single runs swing by tens of percent. The 1-minute load average before and
after is recorded so a reader can tell a quiet run from a busy one.
Prints one JSON line and writes benchmarks/results/synth_speed.json.
Run: python benchmarks/synth_speed.py [--count-per-class 300] [--repeats 3] [--product NAME ...]
"""

from __future__ import annotations

import sys
import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from inspection.synthetic import CLASSES, GENERATOR_VERSION, render_item, write_dataset
from inspection.synthetic.dataset import DEFAULT_PNG_LEVEL, _init_worker
from inspection.cli import run_guarded
from training.bench.result_file import write_result

RESULT_PATH = Path(__file__).parent / "results" / "synth_speed.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _render_range(task: tuple[int, int, int, int, str]) -> int:
    start, stop, width_px, height_px, product = task
    for index in range(start, stop):
        render_item(1, index, CLASSES[index % len(CLASSES)], width_px, height_px, product=product)
    return stop - start


def _rates(samples: list[tuple[int, float]]) -> dict:
    """Best and median of repeated runs: this machine is shared, so single runs swing by 40%."""
    rates = sorted(images / seconds for images, seconds in samples)
    return {"images_per_s_best": round(rates[-1], 1), "images_per_s_median": round(statistics.median(rates), 1),
            "runs": len(rates), "images_per_run": samples[0][0]}


def render_one_core(count: int, width_px: int, height_px: int, repeats: int, product: str) -> dict:
    _render_range((0, len(CLASSES), width_px, height_px, product))  # build the per-process textures first
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        _render_range((0, count, width_px, height_px, product))
        samples.append((count, time.perf_counter() - started))
    result = _rates(samples)
    result["ms_per_image_best"] = round(1e3 / result["images_per_s_best"], 2)
    return result


def per_class_ms(count: int, size_px: int, product: str) -> dict:
    timings = {}
    for label in CLASSES:
        started = time.perf_counter()
        for index in range(count):
            render_item(1, index, label, size_px, size_px, product=product)
        timings[label] = round((time.perf_counter() - started) * 1e3 / count, 2)
    return timings


def render_parallel(count: int, size_px: int, workers: int, repeats: int, product: str) -> dict:
    chunk = 50
    tasks = [(start, min(start + chunk, count), size_px, size_px, product) for start in range(0, count, chunk)]
    context = multiprocessing.get_context("spawn")
    samples = []
    with context.Pool(workers, initializer=_init_worker) as pool:
        pool.map(_render_range, [(0, 14, size_px, size_px, product)] * workers)  # start-up and textures, not timed
        for _ in range(repeats):
            started = time.perf_counter()
            done = sum(pool.imap_unordered(_render_range, tasks))
            samples.append((done, time.perf_counter() - started))
    return _rates(samples) | {"workers": workers}


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write_dataset_speed(count_per_class: int, size_px: int, workers: int, repeats: int, product: str,
                        png_level: int = DEFAULT_PNG_LEVEL) -> dict:
    samples, cpu_ms_per_image = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="synth_speed_") as scratch:
            out_dir = Path(scratch) / "dataset"
            started, cpu_started = time.perf_counter(), _cpu_s()
            summary = write_dataset(out_dir, count_per_class, seed=1, size_px=size_px, workers=workers,
                                    progress=False, product=product, png_level=png_level)
            samples.append((summary["total"], time.perf_counter() - started))
            cpu_ms_per_image.append((_cpu_s() - cpu_started) * 1e3 / summary["total"])
            png_bytes = sum(path.stat().st_size for path in out_dir.rglob("*.png"))
    # CPU time per image is far less disturbed by other jobs on the machine than wall time;
    # cores / CPU time is what the machine does when nothing else runs (start-up included).
    best_cpu_ms = min(cpu_ms_per_image)
    return _rates(samples) | {
        "workers": workers, "png_zlib_level": png_level, "cpu_ms_per_image_best": round(best_cpu_ms, 2),
        "cpu_bound_images_per_s": round(workers * 1e3 / best_cpu_ms, 1),
        "mean_png_kib": round(png_bytes / summary["total"] / 1024, 1),
        "includes": "worker start-up, rendering, PNG encoding and writing, synth.json, final rename"}


def measure(args: argparse.Namespace, workers: int, product: str) -> dict:
    return {
        "write_dataset": write_dataset_speed(args.count_per_class, args.size_px, workers, args.repeats, product),
        "write_dataset_png_level_1": write_dataset_speed(args.count_per_class, args.size_px, workers, args.repeats,
                                                         product, png_level=1),
        "render_parallel": render_parallel(args.count_per_class * len(CLASSES), args.size_px, workers,
                                           args.repeats, product),
        "render_one_core": render_one_core(700, args.size_px, args.size_px, args.repeats, product),
        "render_one_core_per_class_ms": per_class_ms(100, args.size_px, product),
        "render_640x480_one_core": render_one_core(70, 640, 480, args.repeats, product),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count-per-class", type=int, default=300)
    parser.add_argument("--size-px", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    parser.add_argument("--product", action="append", default=[], metavar="NAME",
                        help="also measure this named product (repeatable); mixed is always measured")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    load_before = os.getloadavg()
    result = {
        "benchmark": "synth_speed",
        "generator_version": GENERATOR_VERSION,
        "machine": {"cpu_model": cpu_model(), "cores": workers, "python": platform.python_version(),
                    "numpy": np.__version__, "opencv": cv2.__version__},
        "size_px": args.size_px,
        "product": "mixed",
        **measure(args, workers, "mixed"),
        "products": {product: measure(args, workers, product) for product in args.product},
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
