"""Copying a batch into a GPU backend's pinned host memory, the source of its upload.

The station's prepared images lie in the preparers' shared buffers, one array each. They are copied
into the pinned memory straight from there (`copy_rows` with a list): stacking them into one array
first would copy every image twice, and at 224 px a batch of 64 is 9.6 MB. A large batch is copied
by several threads (numpy releases the GIL while it copies): up to 4, one for every 4 cores the
process may use. On the 2-core machine a second copy thread cost the station's own threads more
than it saved (README, "Where a GPU station's time goes").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

MAX_STAGING_COPY_THREADS = 4
# Below this a batch is copied on the caller's thread: handing it to a pool costs more than it saves.
PARALLEL_COPY_MIN_BYTES = 4 * 1024 * 1024


def copy_rows(destination: np.ndarray, source: np.ndarray | Sequence[np.ndarray],
              pool: ThreadPoolExecutor | None = None, threads: int = 1) -> None:
    """destination[i] = source[i] for every row. `source` is one array or a list of equally shaped arrays
    (copied one by one, never stacked first); the copy is split by rows over `threads` pool threads
    when it is large. A row of another shape is a ValueError, a dtype that does not cast safely a
    TypeError: raised once every part has ended, so that no thread still reads `source` or writes
    `destination` after the caller has let go of them."""
    rows = len(source)
    if len(destination) != rows:
        raise ValueError(f"{rows} rows cannot be copied into {len(destination)}")
    nbytes = destination.nbytes

    def copy_part(start: int, stop: int) -> None:
        if isinstance(source, np.ndarray):
            np.copyto(destination[start:stop], source[start:stop], casting="safe")
        elif stop > start:
            np.stack(source[start:stop], out=destination[start:stop], casting="safe")

    if pool is None or nbytes < PARALLEL_COPY_MIN_BYTES or threads < 2 or rows < 2:
        copy_part(0, rows)
        return
    step = -(-rows // threads)
    parts = [pool.submit(copy_part, start, min(start + step, rows)) for start in range(0, rows, step)]
    wait(parts)
    for part in parts:
        part.result()


def staging_copy_threads(cores: int | None = None) -> int:
    """Threads for the staging copy on a host with `cores` usable cores (this process's, by default)."""
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    return max(1, min(MAX_STAGING_COPY_THREADS, cores // 4))


class StagingCopier:
    """`copy_rows` on this host's copy threads (`staging_copy_threads`): one per backend, closed with it."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = staging_copy_threads() if threads is None else threads
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="staging-copy") if self.threads > 1 else None

    def copy(self, destination: np.ndarray, source: np.ndarray | Sequence[np.ndarray]) -> None:
        copy_rows(destination, source, self._pool, self.threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
