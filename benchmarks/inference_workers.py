"""The station with 1 and 2 inference workers, alternated on the same machine in the same minutes.

    .venv/bin/python benchmarks/inference_workers.py --folder-bundle B1 --folder DIR --line-bundle B2
        [--product NAME] [--frames N] [--rounds N] [--out FILE]

Per round, each setting runs once as `inspection station run CONFIG --json` (unpaced, no archive):
  * `one_worker`: 1 inference worker, ONNX Runtime's own threads (every core): the default before;
  * `one_worker_one_thread`: 1 worker on 1 model thread (the synthetic example's setting before);
  * `two_workers`: the station's default now (2 workers, an equal share of the cores each);
on a folder of image files (`--folder`, replayed by `--folder-bundle`) and on the synthetic line of
`--product` (`--line-bundle`). This VM's speed drifts by 20-30% within minutes, so the settings
alternate and every run is kept; the medians and per-round ratios are in the summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from inspection.cli import run_guarded
from training.versions import library_versions, machine_description
from training.bench.result_file import write_result

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "one_worker": {"batching": {"inference_workers": 1}},
    "one_worker_one_thread": {"batching": {"inference_workers": 1}, "backend": {"threads": 1}},
    "two_workers": {},
}
KEYS = ("frames", "fault", "late", "throughput_fps", "backend_raw_fps", "backend", "inference_workers", "latency_ms",
        "mean_batch_size")


def station_run(config: dict, folder: Path, frames: int) -> dict:
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config, default=str))))
    command = [str(ROOT / ".venv" / "bin" / "inspection"), "station", "run", str(path), "--frames", str(frames), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"station run failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    return {key: summary.get(key) for key in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder-bundle", type=Path, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--line-bundle", type=Path, required=True)
    parser.add_argument("--product", default="white-round-scored")
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference_workers_cpu.json"))
    args = parser.parse_args()
    sources = {
        "folder": {"bundle": args.folder_bundle.resolve(), "source": {"kind": "folder", "path": args.folder.resolve()}},
        "synthetic_line": {"bundle": args.line_bundle.resolve(),
                           "source": {"kind": "synthetic", "defect_rate": 0.02, "seed": 11, "product": args.product}},
    }
    runs: dict[str, dict[str, list[dict]]] = {source: {name: [] for name in SETTINGS} for source in sources}
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(1, args.rounds + 1):
            for source, base in sources.items():
                for name, setting in SETTINGS.items():
                    result = station_run({**base, **setting}, Path(tmp), args.frames)
                    runs[source][name].append(result)
                    print(f"round {round_number} {source} {name}: {result['throughput_fps']:.1f} frames/s "
                          f"(raw {result['backend_raw_fps']:.1f}, faults {result['fault']})", file=sys.stderr, flush=True)
    summary = {}
    for source, by_setting in runs.items():
        fps = {name: [r["throughput_fps"] for r in results] for name, results in by_setting.items()}
        summary[source] = {
            "median_frames_per_s": {name: statistics.median(values) for name, values in fps.items()},
            "two_workers_over_one_worker_per_round": [b / a for a, b in zip(fps["one_worker"], fps["two_workers"])],
            "two_workers_over_one_worker_one_thread_per_round": [b / a for a, b in zip(fps["one_worker_one_thread"], fps["two_workers"])],
            "faults": sum(r["fault"] for results in by_setting.values() for r in results),
        }
    result = {"machine": machine_description(), "versions": library_versions(), "frames": args.frames, "rounds": args.rounds,
              "product": args.product, "summary": summary, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
