"""The GPU backends' staging copy on this machine's CPU: one batch of 256 frames at 224 px
(38.5 MB, uint8) copied by one thread and by `copy_rows` with MAX_STAGING_COPY_THREADS threads.

    .venv/bin/python benchmarks/staging_copy.py [--rounds 20] [--out benchmarks/results/staging_copy_cpu.json]

And a station's batch: 64 prepared images at 224 px, each in its own shared-memory buffer as the
preparer processes lend them (a pool of STATION_POOL_IMAGES, more than the CPU's caches hold, taken
in turn), copied into the staging memory either stacked first (`np.stack`, then `copy_rows`: the
station before the twenty-third session) or straight from the buffers (`copy_rows` with the list:
`Backend.infer_images`), by one thread and by MAX_STAGING_COPY_THREADS.

Without a GPU the destination is ordinary (pageable) memory, not pinned memory: the figure is
the host's copy bandwidth, which the GPU backend's copy into pinned memory is bound by too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from inspection.backends.staging import MAX_STAGING_COPY_THREADS, copy_rows
from inspection.cli import run_guarded
from station.shared_frames import allocate_shared_memory, release_shared_memory
from training.bench.result_file import write_or_print
from training.versions import library_versions, machine_description

BATCH_SHAPE = (256, 224, 224, 3)
STATION_BATCH, STATION_POOL_IMAGES = 64, 1024  # the pool: 154 MB


def alternated_median_ms(copies: dict[str, Callable[[int], None]], rounds: int) -> dict[str, float]:
    """Each copy timed once a round, in turn (given the round's number); the median milliseconds of each,
    leaving out the first two rounds, which warm the pages."""
    times_ms: dict[str, list[float]] = {name: [] for name in copies}
    for number in range(rounds + 2):
        for name, copy in copies.items():
            started = time.perf_counter()
            copy(number)
            times_ms[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values[2:]) for name, values in times_ms.items()}


def station_batch_ms(rounds: int, pool: ThreadPoolExecutor) -> dict[str, float]:
    """Median milliseconds to copy a station's batch from the preparers' buffers into staging memory."""
    image_shape = BATCH_SHAPE[1:]
    buffers: list = []
    images: list = []
    try:  # reserved as the preparers' are: a full /dev/shm is an error here, not a SIGBUS
        for _ in range(STATION_POOL_IMAGES):  # one by one: those made before a failure are released
            buffers.append(allocate_shared_memory(int(np.prod(image_shape))))
        images = [np.ndarray(image_shape, np.uint8, buffer=memory.buf) for memory in buffers]
        rng = np.random.default_rng(1)
        for image in images:
            image[...] = rng.integers(0, 256, image_shape, dtype=np.uint8)
        staging = np.zeros((STATION_BATCH, *image_shape), dtype=np.uint8)
        ways = [(way, threads) for way in ("stacked first", "from the buffers") for threads in (1, MAX_STAGING_COPY_THREADS)]

        def copy(way_number: int, stacked: bool, threads: int) -> Callable[[int], None]:
            def copy_a_batch(round_number: int) -> None:  # each time another batch of the pool
                start = (round_number * len(ways) + way_number) % (STATION_POOL_IMAGES // STATION_BATCH) * STATION_BATCH
                batch = images[start : start + STATION_BATCH]
                copy_rows(staging, np.stack(batch) if stacked else batch, pool, threads)
                assert np.array_equal(staging[-1], batch[-1])
            return copy_a_batch

        copies = {f"{way}, {threads} thread{'s' if threads > 1 else ''}": copy(number, way == "stacked first", threads)
                  for number, (way, threads) in enumerate(ways)}
        return {name: round(ms, 2) for name, ms in alternated_median_ms(copies, rounds).items()}
    finally:
        images = None  # the views first (the copies read them from here): a mapping with views alive cannot be closed
        for memory in buffers:
            release_shared_memory(memory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    source = np.random.default_rng(0).integers(0, 256, BATCH_SHAPE, dtype=np.uint8)
    destination = np.empty_like(source)
    with ThreadPoolExecutor(max_workers=MAX_STAGING_COPY_THREADS) as pool:
        median_ms = alternated_median_ms({f"{threads} thread{'s' if threads > 1 else ''}":
                                          lambda _, threads=threads: copy_rows(destination, source, pool, threads)
                                          for threads in (1, MAX_STAGING_COPY_THREADS)}, args.rounds)
        assert np.array_equal(destination, source)
        station_batch = station_batch_ms(args.rounds, pool)
    result = {"machine": machine_description(), "versions": library_versions(), "batch_shape": list(BATCH_SHAPE),
              "megabytes": round(source.nbytes / 1e6, 1), "rounds": args.rounds,
              "median_ms": {name: round(ms, 2) for name, ms in median_ms.items()},
              "gigabytes_per_s": {name: round(source.nbytes / 1e6 / ms, 1) for name, ms in median_ms.items()},
              "station_batch": {"images": STATION_BATCH, "pool_images": STATION_POOL_IMAGES, "median_ms": station_batch,
                                "megabytes": round(STATION_BATCH * int(np.prod(BATCH_SHAPE[1:])) / 1e6, 1)}}
    write_or_print(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
