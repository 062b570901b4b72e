"""Timings a station keeps for a run of any length, in constant memory.

A station runs for days at 100 items/s: kept as a list, its per-item timings grew memory by tens of
bytes per item (the soak measured it) and every Prometheus scrape rescanned all of them. Here each
value only increments a counter in one of a fixed set of 1%-wide logarithmic bins. Count, sum and
maximum are exact; a percentile is the upper edge of the bin that holds it, so it reads at most 1%
high (and never above the exact maximum).
"""

from __future__ import annotations

import math
import threading

import numpy as np

BIN_RATIO = 1.01
SMALLEST_MS = 1e-3  # values at or below this share the first bin
_LARGEST_MS = 1e7  # about 2.8 hours; anything longer shares the last bin
_BINS = math.ceil(math.log(_LARGEST_MS / SMALLEST_MS) / math.log(BIN_RATIO)) + 1
# Bin i holds values in (UPPER_EDGES[i-1], UPPER_EDGES[i]]; the last bin is open-ended.
UPPER_EDGES = SMALLEST_MS * BIN_RATIO ** np.arange(_BINS, dtype=np.float64)
UPPER_EDGES[-1] = math.inf
_LOG_RATIO = math.log(BIN_RATIO)


def bin_of(value: float) -> int:
    if not value > SMALLEST_MS:  # also NaN
        return 0
    return min(_BINS - 1, math.ceil(math.log(value / SMALLEST_MS) / _LOG_RATIO - 1e-9))


def percentile_of_counts(counts: np.ndarray, q: float) -> float | None:
    """The q-th percentile (0-100) of binned counts, as its bin's upper edge; None when empty."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100.0 * total))
    return float(UPPER_EDGES[int(np.searchsorted(np.cumsum(counts), rank))])


class TimingHistogram:
    """Record values (ms, or any positive quantity) from several threads; read summaries any time."""

    def __init__(self) -> None:
        self._counts = [0] * _BINS  # a list: incrementing an element costs a third of a numpy array's
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0
        self.maximum: float | None = None

    def record(self, value: float) -> None:
        index = bin_of(value)
        with self._lock:
            self._counts[index] += 1
            self.count += 1
            self.total += value
            if self.maximum is None or value > self.maximum:
                self.maximum = value

    def record_many(self, values: list[float]) -> None:
        """record() each value, under one lock (a batch's items at once)."""
        indices = [bin_of(value) for value in values]
        with self._lock:
            for index in indices:
                self._counts[index] += 1
            self.count += len(values)
            self.total += sum(values)
            largest = max(values, default=None)
            if largest is not None and (self.maximum is None or largest > self.maximum):
                self.maximum = largest

    def __len__(self) -> int:
        return self.count

    def counts(self) -> np.ndarray:
        with self._lock:
            return np.array(self._counts, dtype=np.int64)

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        value = percentile_of_counts(self.counts(), q)
        return None if value is None else min(value, self.maximum)

    def summary(self) -> dict:
        """{p50, p99, max}: what a run reports."""
        return {"p50": self.percentile(50), "p99": self.percentile(99), "max": self.maximum}

    def cumulative_counts(self, edges: tuple[float, ...]) -> list[int]:
        """Values at or below each edge (a Prometheus histogram's buckets), counting only bins that lie
        wholly below it: a bin straddling an edge is counted in the next bucket (1% resolution)."""
        cumulative = np.cumsum(self.counts())
        return [int(cumulative[int(np.searchsorted(UPPER_EDGES, edge, side="right")) - 1]) if edge >= SMALLEST_MS else 0
                for edge in edges]
