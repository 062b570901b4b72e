"""Latency histogram PNG for a station run (capture to decision), with p50/p99 marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from station.timing_histogram import UPPER_EDGES, TimingHistogram


def write_latency_histogram(latencies_ms: TimingHistogram, path: Path, title: str) -> Path:
    counts = latencies_ms.counts()
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.add_subplot()
    occupied = np.flatnonzero(counts)
    if len(occupied):
        # About 100 bars over the occupied range: the 1% bins merged in groups.
        first, last = int(occupied[0]), int(occupied[-1])
        group = max(1, (last - first + 1) // 100)
        stops = np.arange(first, last + 1, group)
        merged = np.add.reduceat(counts[first : last + 1], stops - first)
        lower = np.where(stops > 0, UPPER_EDGES[np.maximum(stops - 1, 0)], 0.0)
        upper = np.minimum(UPPER_EDGES[np.minimum(stops + group - 1, len(UPPER_EDGES) - 1)], latencies_ms.maximum)
        axes.bar(lower, merged, width=np.maximum(upper - lower, 1e-6), align="edge", color="#4c72b0")
        for q, style in ((50, "--"), (99, ":")):
            value = latencies_ms.percentile(q)
            axes.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.1f} ms")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no decisions", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("capture to decision (ms)")
    axes.set_ylabel("items")
    axes.set_title(f"{title} ({latencies_ms.count} items)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
