"""Timing samples a station keeps for its whole run, compactly.

A station runs for days: a Python list holds each float as a 32-byte object plus an 8-byte slot,
which the soak measured as steady memory growth. Here a value costs 8 bytes in a numpy buffer that
doubles when full, and percentiles stay exact.
"""

from __future__ import annotations

import threading

import numpy as np

_INITIAL_CAPACITY = 4096


class SampleSeries:
    """Append-only float64 samples; safe to append from several threads."""

    def __init__(self) -> None:
        self._buffer = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self._count = 0
        self._lock = threading.Lock()

    def append(self, value: float) -> None:
        with self._lock:
            if self._count == len(self._buffer):
                grown = np.empty(2 * len(self._buffer), dtype=np.float64)
                grown[: self._count] = self._buffer
                self._buffer = grown
            self._buffer[self._count] = value
            self._count += 1

    def values(self) -> np.ndarray:
        """A copy of the samples so far (readers run beside the appending threads)."""
        with self._lock:
            return self._buffer[: self._count].copy()

    def __len__(self) -> int:
        return self._count
