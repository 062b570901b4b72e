"""Latency histogram PNG for a station run (capture to decision), with p50/p99 marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def write_latency_histogram(latencies_ms: np.ndarray, path: Path, title: str) -> Path:
    values = np.asarray(latencies_ms, dtype=np.float64)
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.add_subplot()
    if len(values):
        axes.hist(values, bins=min(100, max(10, len(values) // 20)), color="#4c72b0")
        for q, style in ((50, "--"), (99, ":")):
            value = float(np.percentile(values, q))
            axes.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.1f} ms")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no decisions", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("capture to decision (ms)")
    axes.set_ylabel("items")
    axes.set_title(f"{title} ({len(values)} items)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
