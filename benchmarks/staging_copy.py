"""The CUDA graph runner's staging copy on this machine's CPU: one batch of 256 frames at 224 px
(38.5 MB, uint8) copied by one thread and by `copy_rows` with STAGING_COPY_THREADS threads.

    .venv/bin/python benchmarks/staging_copy.py [--rounds 20] [--out benchmarks/results/staging_copy_cpu.json]

Without a GPU the destination is ordinary (pageable) memory, not pinned memory: the figure is
the host's copy bandwidth, which the GPU backend's copy into pinned memory is bound by too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from inspection.backends.cuda_graphs import STAGING_COPY_THREADS, copy_rows
from inspection.cli import run_guarded
from training.bench.result_file import write_or_print
from training.versions import library_versions, machine_description

BATCH_SHAPE = (256, 224, 224, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    source = np.random.default_rng(0).integers(0, 256, BATCH_SHAPE, dtype=np.uint8)
    destination = np.empty_like(source)
    times_ms: dict[str, list[float]] = {"1 thread": [], f"{STAGING_COPY_THREADS} threads": []}
    with ThreadPoolExecutor(max_workers=STAGING_COPY_THREADS) as pool:
        for _ in range(args.rounds + 2):  # alternated; the first two rounds warm the pages
            for name, threads in (("1 thread", 1), (f"{STAGING_COPY_THREADS} threads", STAGING_COPY_THREADS)):
                started = time.perf_counter()
                copy_rows(destination, source, pool, threads)
                times_ms[name].append((time.perf_counter() - started) * 1000)
    assert np.array_equal(destination, source)
    median_ms = {name: statistics.median(values[2:]) for name, values in times_ms.items()}
    result = {"machine": machine_description(), "versions": library_versions(), "batch_shape": list(BATCH_SHAPE),
              "megabytes": round(source.nbytes / 1e6, 1), "rounds": args.rounds,
              "median_ms": {name: round(ms, 2) for name, ms in median_ms.items()},
              "gigabytes_per_s": {name: round(source.nbytes / 1e6 / ms, 1) for name, ms in median_ms.items()}}
    write_or_print(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
