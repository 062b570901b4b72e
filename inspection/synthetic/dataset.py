"""Write a folder-per-class synthetic dataset, in parallel, all or nothing.

Layout: `<out_dir>/<class>/<class>_<index:06d>.png` for every class, plus `<out_dir>/synth.json`.
The number in a file name is the `index` given to `render_item`, so any file can be rendered
again from its name alone. Classes take turns over the indices (index = position * 7 + the
class's position in CLASSES), so every image of the dataset shows a different scene.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import multiprocessing
import os
import shutil
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np

from inspection.errors import ConfigError, OutputExistsError
from inspection.synthetic.products import MIXED, check_product, lookup
from inspection.synthetic.render import CLASSES, GENERATOR_VERSION, check_size_px, render_item

# zlib level of the PNG files. 0 (stored, the default) writes a 224 px image in 0.24 ms and reads
# it in 0.27 ms; level 1 takes 1.65 ms to write and 1.66 ms to read, for files of 79 KiB instead
# of 148 KiB (measured on these noisy frames). Writing and reading a set costs more than its disk.
DEFAULT_PNG_LEVEL = 0


def png_params(level: int) -> list[int]:
    if level == 0:
        return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    # Huffman-only coding and the SUB filter: 3x faster than libpng's default strategy and
    # filters at level 1 on these noisy frames, and smaller files (measured).
    return [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]

_Job = tuple[str, int]  # (label, render index)


def file_name(label: str, index: int) -> str:
    return f"{label}_{index:06d}.png"


def _frame_wh(size_px: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) in px: an int is a square image, a pair a camera frame such as (640, 480)."""
    if isinstance(size_px, tuple) and len(size_px) == 2:
        check_size_px("width_px", size_px[0])
        check_size_px("height_px", size_px[1])
        return size_px
    check_size_px("size_px", size_px)
    return size_px, size_px


def _validate(out_dir: Path, count_per_class: int, seed: int, workers: int | None,
              product: str, png_level: int) -> None:
    if isinstance(png_level, bool) or not isinstance(png_level, int) or not 0 <= png_level <= 9:
        raise ConfigError(f"png_level={png_level!r} is not usable; expected a zlib level from 0 (stored, fastest) to 9 (smallest)")
    if isinstance(count_per_class, bool) or not isinstance(count_per_class, int) or count_per_class < 1:
        raise ConfigError(f"count_per_class={count_per_class!r} is not usable; expected a whole number >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not usable; expected a whole number >= 0")
    check_product(product)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers={workers!r} is not usable; expected a whole number >= 1, or None for one per CPU")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExistsError(
            f"{out_dir} already exists and is not an empty folder; pick an empty or new folder, "
            f"or delete {out_dir} first"
        )


def _jobs(count_per_class: int) -> list[_Job]:
    return [(label, position * len(CLASSES) + class_index)
            for position in range(count_per_class) for class_index, label in enumerate(CLASSES)]


def _chunks(jobs: list[_Job], workers: int) -> list[list[_Job]]:
    # Small enough for a smooth progress bar and an even spread, big enough to amortise the IPC.
    size = max(4, min(64, len(jobs) // (workers * 8) or 1))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _write_chunk(task: tuple[Path, int, tuple[int, int], str, int, list[_Job]]) -> int:
    root, seed, (width_px, height_px), product, png_level, jobs = task
    params = png_params(png_level)
    for label, index in jobs:
        image = render_item(seed, index, label, width_px, height_px, product=product).image
        path = root / label / file_name(label, index)
        # Encoded here and written by Python: a full disk is then an OSError naming the file, where
        # cv2.imwrite would print libpng's own error lines and only return False.
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OSError(f"OpenCV could not encode {path}")
        try:
            path.write_bytes(encoded.tobytes())
        except OSError as exc:  # a failed write (not open) names no file: name it
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    return len(jobs)


def _init_worker() -> None:
    # One process per core already: OpenCV's own threads would only fight over the cores.
    cv2.setNumThreads(1)
    # A render allocates and frees dozens of 0.2-4 MB arrays. With glibc's default thresholds
    # each is a fresh mmap that the kernel must zero page by page; keeping them on the heap
    # made rendering about 25% faster (measured). Only in these worker processes, which we own.
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
            libc.mallopt(-2, 64 << 20)  # M_TOP_PAD
        except (OSError, AttributeError):
            pass  # not glibc: slower, same pixels


def _progress(enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("[bold]synthesising"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)


def _render_all(staging: Path, seed: int, frame_wh: tuple[int, int], product: str, png_level: int, jobs: list[_Job],
                workers: int, progress: bool) -> None:
    chunks = _chunks(jobs, workers)
    tasks = [(staging, seed, frame_wh, product, png_level, chunk) for chunk in chunks]
    with _progress(progress) as bar:
        task_id = bar.add_task("render", total=len(jobs), rate="")
        if workers == 1 or len(chunks) == 1:
            done = map(_write_chunk, tasks)
            _run(bar, task_id, done)
        else:
            # spawn, not fork: forking a process that may hold threads (a UI, a station) can deadlock.
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(chunks)), initializer=_init_worker) as pool:
                _run(bar, task_id, pool.imap_unordered(_write_chunk, tasks))


def _run(bar, task_id, counts) -> None:
    for count in counts:
        bar.advance(task_id, count)
        speed = bar.tasks[0].speed  # rich's own estimate, over the last few updates
        bar.update(task_id, rate=f"{speed:6.0f} img/s" if speed else "")


def write_dataset(out_dir: Path, count_per_class: int, seed: int = 0, size_px: int | tuple[int, int] = 224,
                  workers: int | None = None, progress: bool = True, product: str = MIXED,
                  png_level: int = DEFAULT_PNG_LEVEL) -> dict:
    """Render count_per_class images of every class into out_dir; return what synth.json says.

    `product` is a name of `products.PRODUCTS` (every image that one product, as one lot of a
    line) or `mixed` (every image a random product). `size_px` is a square's side, or (width,
    height) for frames the size of a line's camera (a model should train on the frames it will
    serve: station/geometry.py). `png_level` is the files' zlib level: the pixels are the same at
    every level.

    The dataset appears at out_dir only when complete: it is written into a hidden sibling folder
    that is renamed into place at the end, and removed if anything goes wrong. The pixels do
    not depend on the number of workers.
    """
    out_dir = Path(out_dir)
    frame_wh = _frame_wh(size_px)
    _validate(out_dir, count_per_class, seed, workers, product, png_level)
    workers = workers or os.cpu_count() or 1
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for label in CLASSES:
            (staging / label).mkdir()
        _render_all(staging, seed, frame_wh, product, png_level, _jobs(count_per_class), workers, progress)
        summary = _summary(seed, frame_wh, count_per_class, product, png_level)
        (staging / "synth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above; rmdir refuses if something appeared since
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _summary(seed: int, frame_wh: tuple[int, int], count_per_class: int, product: str, png_level: int) -> dict:
    catalogue_entry = lookup(product)
    width_px, height_px = frame_wh
    return {
        "generator": "inspection.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size_px": width_px if width_px == height_px else [width_px, height_px],
        "product": product,
        "product_spec": None if catalogue_entry is None else catalogue_entry.describe(),
        "image": {"width_px": width_px, "height_px": height_px, "channels": 3, "colour_order": "RGB", "format": "png",
                  "png_zlib_level": png_level},
        "classes": list(CLASSES),
        "count_per_class": count_per_class,
        "counts": {label: count_per_class for label in CLASSES},
        "total": count_per_class * len(CLASSES),
        "file_pattern": "<class>/<class>_<index:06d>.png",
        "index_rule": (f"index = position * {len(CLASSES)} + the class's position in classes; each file is "
                       "render_item(seed, index, class, width_px, height_px, product=product)"),
        "numpy_version": np.__version__,
        "opencv_version": cv2.__version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
