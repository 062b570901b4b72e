"""Soak: the station on a synthetic line at a set rate for a long time, watched from the inside.

    .venv/bin/python benchmarks/soak.py [BUNDLE] [--duration-s 1800] [--rate-hz 20] [--out FILE]

Runs `run_station` (ONNX Runtime, synthetic 640x480 line, 2% defects, default archive policy,
simulated rejector) in a thread and samples it every --sample-s seconds: items, throughput and
capture-to-decision latency percentiles of the window, resident memory, open file descriptors,
threads, queue depths and archive size. At the end: the station's own summary, `audit verify`,
the count balance in the archive (one record per item) and the growth of memory and descriptors
after the warm-up. Writes a JSON file and a PNG of latency and memory over time.

The default rate is the rated rate of the worst archive load on a 2-core machine: the demo bundle
rejects every item, so every item is archived as a lossless 640x480 PNG, and the writer encodes
about 25 of those per second. Faster than that, the archive queue fills and the station stops the
line (by design); a model that passes most items can run faster (see docs/audit_trail.md).
"""

from __future__ import annotations

import sys
import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import station.runner as runner
from station.archive import Archive
from station.config import StationConfig
from station.runner import RunLimits, run_station
from station.timing_histogram import percentile_of_counts
from training.versions import library_versions, machine_description
from inspection.cli import run_guarded
from training.bench.result_file import write_result

DEFAULT_BUNDLE = Path("runs/demo/bundle")  # what `bash scripts/demo.sh` leaves behind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=DEFAULT_BUNDLE)
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--width-px", type=int, default=640)
    parser.add_argument("--height-px", type=int, default=480)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is measured from here")
    parser.add_argument("--archive", type=Path, help="archive root (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak_cpu.json"))
    parser.add_argument("--note", default="", help="recorded in the result, e.g. what else ran on the machine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive_root = args.archive or Path(tmp) / "archive"
        result = soak(args, archive_root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    write_plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("frames", "throughput_fps", "rss_growth_after_warmup", "fd_growth_after_warmup",
                                              "records_lost", "balanced", "audit_verified")}))


def soak(args: argparse.Namespace, archive_root: Path) -> dict:
    config = StationConfig.model_validate({
        "bundle": args.bundle,
        "station": {"id": "soak", "lot": "SOAK"},
        "backend": {"kind": "onnxruntime", "threads": 2},
        "source": {"kind": "synthetic", "rate_hz": args.rate_hz, "defect_rate": 0.02, "seed": 3,
                   "width_px": args.width_px, "height_px": args.height_px},
        "archive": {"path": archive_root},
    })
    pipelines = _observe_pipelines()
    outcome: dict = {}

    def station() -> None:
        try:
            outcome["summary"] = run_station(config, RunLimits(duration_s=args.duration_s), progress=False)
        except Exception as exc:  # reported in the result: a soak that stops is a finding, not a crash
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome["exception"] = exc

    thread = threading.Thread(target=station, name="soak-station")
    started = time.monotonic()
    thread.start()
    samples = _sample_until_done(thread, pipelines, archive_root, started, args.sample_s)
    if not pipelines and "exception" in outcome:
        # The station refused to start (a bad bundle, say): that is the input's fault, not a finding.
        raise outcome["exception"]
    summary = outcome.get("summary", {})
    with Archive.open(archive_root, create=False) as archive:
        archived_records = sum(archive.counts("SOAK").values())
    # Growth is judged while the line runs: after the run the archive drains and the pool is freed.
    running = [s for s in samples if s["t_s"] <= args.duration_s] or samples
    after_warmup = [s for s in running if s["t_s"] >= args.warmup_s] or running
    first, last = after_warmup[0], running[-1]
    return {
        "machine": machine_description(),
        "versions": library_versions(),
        "note": args.note,
        "bundle": str(args.bundle),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "archive", "note", "bundle")},
        "error": outcome.get("error"),
        "frames": summary.get("frames"),
        "verdicts": {k: summary.get(k) for k in ("passed", "rejected", "uncertain", "fault", "late", "overruns")},
        "throughput_fps": summary.get("throughput_fps"),
        "latency_ms": summary.get("latency_ms"),
        "alarms": summary.get("alarms"),
        "balanced": summary.get("balanced"),
        "archived_records": archived_records,
        "records_lost": (summary.get("frames") or 0) - archived_records,
        "audit_verified": summary.get("audit_verified"),
        "archive_bytes": samples[-1]["archive_bytes"],
        "rss_mib_after_warmup": first["rss_mib"],
        "rss_mib_end_of_run": last["rss_mib"],
        "rss_growth_after_warmup": (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"],
        "open_fds_after_warmup": first["open_fds"],
        "fd_growth_after_warmup": last["open_fds"] - first["open_fds"],
        "threads_growth_after_warmup": last["threads"] - first["threads"],
        "samples": samples,
    }


def _observe_pipelines() -> list:
    """Keep a handle on the pipeline run_station builds, to read its tally while it runs."""
    seen: list = []

    class Observed(runner.StationPipeline):
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            seen.append(self)

    runner.StationPipeline = Observed
    return seen


def _sample_until_done(thread: threading.Thread, pipelines: list, archive_root: Path, started: float, every_s: float) -> list[dict]:
    samples: list[dict] = []
    seen_counts, seen_frames, last_t = None, 0, 0.0
    while thread.is_alive():
        thread.join(every_s)
        if not pipelines:
            continue
        tally, t = pipelines[0].tally, time.monotonic() - started
        counts = tally.latencies_ms.counts()
        window = counts if seen_counts is None else counts - seen_counts
        frames = tally.frames
        samples.append({
            "t_s": round(t, 1),
            "frames": frames,
            "throughput_fps": (frames - seen_frames) / (t - last_t) if t > last_t else 0.0,
            "latency_ms": ({"p50": percentile_of_counts(window, 50), "p99": percentile_of_counts(window, 99),
                            "max": percentile_of_counts(window, 100)} if window.sum() else None),
            "decided": sum(tally.verdicts.values()),
            "alarms": len(tally.alarms),
            "queues": pipelines[0].queue_depths(),
            "rss_mib": _rss_mib(),
            "open_fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(),
            "archive_bytes": sum(p.stat().st_size for p in archive_root.rglob("*") if p.is_file()),
        })
        seen_counts = counts
        seen_frames, last_t = frames, t
    return samples


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_plot(result: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    samples = [s for s in result["samples"] if s["latency_ms"]]
    t = [s["t_s"] / 60 for s in samples]
    figure = Figure(figsize=(8, 5), dpi=110)
    latency, memory = figure.subplots(2, 1, sharex=True)
    for key, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
        latency.plot(t, [s["latency_ms"][key] for s in samples], style, label=key)
    latency.set_ylabel("capture to decision, ms")
    latency.legend()
    latency.set_title(f"soak at {result['settings']['rate_hz']:g} items/s, {result['machine']}", fontsize=9)
    memory.plot(t, [s["rss_mib"] for s in samples], label="RSS MiB")
    memory.axvline(result["settings"]["warmup_s"] / 60, color="grey", linestyle=":", label="end of warm-up")
    memory.set_ylabel("resident memory, MiB")
    memory.set_xlabel("minutes")
    memory.legend()
    figure.tight_layout()
    figure.savefig(path)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
