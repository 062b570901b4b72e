"""Folder-of-PNG replay: the station against Ultralytics' predict pipeline, same ONNX model, same files.

Issue 3's target: replaying a folder of PNG files, where decoding competes with inference for the
2 cores, the station reaches at least 1.6x the images/s of Ultralytics' predict pipeline running the
same ONNX model (a `yolo11n-cls` at 224 px, imported with `inspection bundle import`).

Reproduce (nothing is downloaded at run time; the model is built from its YAML with random weights):

    # once: a separate venv for Ultralytics (it pulls opencv-python, which clashes with the project's
    # opencv-python-headless, so it never goes into .venv; /.bench-venv/ is in .gitignore).
    python3.11 -m venv .bench-venv
    # the local CPU torch wheel only stands in for torch while pip resolves (no CUDA download) ...
    .bench-venv/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \\
        "torchvision==0.28.*" ultralytics onnx onnxslim onnxruntime==1.32.0
    # ... then both go: PyPI's torchvision links the CUDA torch build, so Ultralytics uses the project's
    # own torch 2.14.1 / torchvision 0.29.1 from .venv, appended to sys.path (after the venv's own
    # packages, so its cv2 is opencv-python's and its numpy and onnxruntime its own).
    .bench-venv/bin/pip uninstall -y torch torchvision
    echo "$PWD/.venv/lib/python3.11/site-packages" > .bench-venv/lib/python3.11/site-packages/zz_project_torch.pth
    # then, from the project's venv:
    .venv/bin/python benchmarks/ultralytics_compare.py [--images 1000] [--rounds 3] [--out FILE]

What it does:
  1. renders the PNG folders with the synthetic generator (runs/ultralytics_compare/, kept between
     runs): camera-size 640x480 frames and 224x224 frames, 2% defects, PNG as cv2.imwrite writes it;
  2. builds `yolo11n-cls` from its YAML in the bench venv and exports it to ONNX at 224 px
     (dynamic batch, simplified);
  3. imports it: `inspection bundle import` with Ultralytics' classification preprocessing (shortest
     side to 224 then centre crop, RGB, /255 with mean 0 and std 1; the model ends in a softmax);
  4. alternates, `--rounds` times and per folder: `inspection station run --bundle B --source FOLDER
     --json` (unpaced replay, the quick-start defaults), then Ultralytics'
     `YOLO(onnx, task="classify").predict(source=FOLDER, imgsz=224, stream=True)` over every file;
     each with the load average before it (the 2 cores are shared with other jobs);
  5. measures Ultralytics' raw ONNX Runtime throughput on a preprocessed tensor (batch 1, as its
     predict runs, and batch 8, the station's max batch) for reference;
  6. writes medians and the ratio station/Ultralytics to benchmarks/results/ultralytics_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from inspection.cli import run_guarded
from inspection.errors import ConfigError
from training.bench.result_file import write_result

ROOT = Path(__file__).resolve().parent.parent
SIDE = ROOT / "benchmarks" / "ultralytics_side.py"
SIZES = {"640x480": (640, 480), "224x224": (224, 224)}
SEED = 5


def _render_one(task: tuple[Path, int, int, int]) -> None:
    from inspection.synthetic.render import label_for_index, render_item

    folder, index, width, height = task
    label = label_for_index(SEED, index, 0.02)
    image = render_item(SEED, index, label, width, height).image
    # cv2.imwrite's default PNG settings (zlib level 3), as most capture tools write them.
    cv2.imwrite(str(folder / f"{index:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def make_folder(folder: Path, images: int, width: int, height: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(images) if not (folder / f"{i:06d}.png").exists()]
    if missing:
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_render_one, [(folder, i, width, height) for i in missing], chunksize=32))
    extra = sorted(folder.glob("*.png"))[images:]
    for path in extra:
        path.unlink()
    return folder


def _last_json(stdout: str) -> dict:
    """The station prints one (indented) JSON object; the Ultralytics side one JSON line after its logs."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        return json.loads(stdout.strip().splitlines()[-1])


def bench_side(bench_python: Path, *args: str, timeout: float = 900) -> dict:
    done = subprocess.run([str(bench_python), str(SIDE), *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"ultralytics side failed ({' '.join(args)}):\n{done.stderr[-3000:]}")
    return _last_json(done.stdout)


def export_model(bench_python: Path, onnx: Path) -> dict:
    meta = onnx.with_suffix(".json")
    if onnx.exists() and meta.exists():
        return json.loads(meta.read_text())
    result = bench_side(bench_python, "export", "--out", str(onnx), "--imgsz", "224")
    meta.write_text(json.dumps(result))
    return result


def import_bundle(onnx: Path, classes: list[str], bundle: Path) -> None:
    command = [str(ROOT / ".venv" / "bin" / "inspection"), "bundle", "import", str(onnx), "--out", str(bundle),
               "--classes", ",".join(classes), "--good", classes[0], "--size", "224",
               "--mean", "0,0,0", "--std", "1,1,1", "--resize", "center_crop", "--overwrite"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bundle import failed:\n{done.stdout}\n{done.stderr}")


def run_station(bundle: Path, folder: Path) -> dict:
    load = os.getloadavg()
    command = [str(ROOT / ".venv" / "bin" / "inspection"), "station", "run", "--bundle", str(bundle),
               "--source", str(folder), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"station run failed:\n{done.stderr[-3000:]}")
    summary = _last_json(done.stdout)
    keep = ("frames", "passed", "rejected", "uncertain", "fault", "late", "alarms", "throughput_fps", "backend_raw_fps",
            "backend", "latency_ms", "stage_ms", "mean_batch_size")
    result = {k: summary.get(k) for k in keep}
    result["images_per_s"] = summary["throughput_fps"]
    result["process_wall_s"] = wall
    result["loadavg_before"] = [round(x, 2) for x in load]
    return result


def run_ultralytics(bench_python: Path, onnx: Path, folder: Path) -> dict:
    load = os.getloadavg()
    started = time.perf_counter()
    result = bench_side(bench_python, "predict", "--model", str(onnx), "--source", str(folder), "--imgsz", "224")
    result["process_wall_s"] = time.perf_counter() - started
    result["loadavg_before"] = [round(x, 2) for x in load]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="640x480,224x224", help="comma-separated, of " + ", ".join(SIZES))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "ultralytics_compare")
    parser.add_argument("--bench-python", type=Path, default=ROOT / ".bench-venv" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ultralytics_compare.json")
    args = parser.parse_args()
    if not args.bench_python.exists():
        raise SystemExit(f"{args.bench_python} not found: create the bench venv first (see this script's docstring).")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise ConfigError(f"--sizes {args.sizes!r} names no known size; use a comma-separated list of {', '.join(SIZES)}")

    folders = {size: make_folder(args.work / f"png_{size}", args.images, *SIZES[size]) for size in sizes}
    onnx = args.work / "yolo11n-cls.onnx"
    exported = export_model(args.bench_python, onnx)
    bundle = args.work / "bundle_yolo11n_cls"
    import_bundle(onnx, exported["classes"], bundle)

    runs: dict[str, list[dict]] = {size: [] for size in sizes}
    for round_index in range(args.rounds):
        for size in sizes:
            ours = run_station(bundle, folders[size])
            theirs = run_ultralytics(args.bench_python, onnx, folders[size])
            runs[size].append({"round": round_index + 1, "station": ours, "ultralytics": theirs,
                               "ratio": ours["images_per_s"] / theirs["images_per_s"]})
            print(f"round {round_index + 1} {size}: station {ours['images_per_s']:.0f} img/s "
                  f"(raw {ours['backend_raw_fps']:.0f}, load {ours['loadavg_before'][0]}), ultralytics "
                  f"{theirs['images_per_s']:.0f} img/s (load {theirs['loadavg_before'][0]}), "
                  f"ratio {runs[size][-1]['ratio']:.2f}", file=sys.stderr, flush=True)

    raw = {f"batch_{b}": bench_side(args.bench_python, "raw", "--model", str(onnx), "--batch", str(b))["images_per_s"]
           for b in (1, 8)}
    raw["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    summary = {}
    for size in sizes:
        ours = [r["station"]["images_per_s"] for r in runs[size]]
        theirs = [r["ultralytics"]["images_per_s"] for r in runs[size]]
        summary[size] = {
            "station_images_per_s_median": statistics.median(ours),
            "station_backend_raw_fps_median": statistics.median(r["station"]["backend_raw_fps"] for r in runs[size]),
            "ultralytics_images_per_s_median": statistics.median(theirs),
            "ratio_of_medians": statistics.median(ours) / statistics.median(theirs),
            "ratio_per_round": [r["ratio"] for r in runs[size]],
            "target_1_6x_met": statistics.median(ours) / statistics.median(theirs) >= 1.6,
        }

    from training.versions import library_versions, machine_description

    result = {
        "machine": machine_description(),
        "versions": {"station": library_versions(), "ultralytics_side": runs[sizes[0]][0]["ultralytics"]["versions"]},
        "model": {"name": "yolo11n-cls (built from yolo11n-cls.yaml, random weights)", "onnx": onnx.name,
                  "imgsz": 224, "classes": len(exported["classes"])},
        "preprocessing": "shortest side to 224, centre crop 224, RGB, /255, mean 0, std 1 (both sides)",
        "images": args.images,
        "folders": {size: f"{SIZES[size][0]}x{SIZES[size][1]} PNG (cv2.imwrite default), synthetic line, 2% defects"
                    for size in sizes},
        "summary": summary,
        "ultralytics_raw_onnxruntime_images_per_s": raw,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(run_guarded(main))
