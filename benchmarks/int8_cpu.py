"""int8 (ONNX Runtime static QDQ) against fp32 on this CPU, and where mobilenet_v3_small's int8 time goes.

    .venv/bin/python benchmarks/int8_cpu.py [--out benchmarks/results/int8_cpu.json]
    .venv/bin/python benchmarks/int8_cpu.py --bundle TRAINED [--rounds N] --out benchmarks/results/int8_trained_cpu.json

For resnet18 and mobilenet_v3_small at 224 px (untrained weights: speed does not depend on their
values; the parity gate needs a trained model and is measured by `inspection export`): images/s at
batch 1 and 8 with 2 threads for fp32 and three quantization variants (medians of 3 alternating rounds), and an ONNX Runtime profile
(time per operator type) of fp32 and int8 mobilenet_v3_small.

With `--bundle`, a trained bundle that `inspection export --precision int8` has given its
`model.int8.onnx`: its own fp32 and int8 files at its own input size, the same rounds, and the int8
parity gate's record from its bundle.json, so speed and gate are shown on one model.
"""

from __future__ import annotations

import sys
import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inspection.preprocess import prepare
from inspection.synthetic.render import CLASSES, render_item
from training.bench.bundles import untrained_bundle
from training.quantize import QUANTIZATION_SCOPES, quantize_qdq
from training.versions import library_versions, machine_description
from inspection.cli import run_guarded
from inspection.errors import ConfigError

SECONDS = 2.0
ROUNDS = 3
BATCHES = (1, 8)
VARIANTS = {
    "per_channel, every operator (the export's first choice)": {"op_types_to_quantize": QUANTIZATION_SCOPES[0].op_types},
    "per_tensor": {"per_channel": False},
    "per_channel, convolutions only (its second choice)": {"op_types_to_quantize": QUANTIZATION_SCOPES[1].op_types},
}


def session(path: Path, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.enable_profiling = profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def images_per_s(path: Path, batch: np.ndarray) -> float:
    s = session(path)
    s.run(None, {"images": batch})
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        s.run(None, {"images": batch})
        calls += 1
    return calls * len(batch) / (time.perf_counter() - started)


def speed_rows(files: dict[str, Path], images: np.ndarray, rounds: int = ROUNDS) -> dict[str, dict]:
    """images/s per file and batch, medians of `rounds`, each against the first file (fp32).
    This VM's speed drifts by 20-30% within minutes: every file is measured once per round, rounds
    alternate, and the median of the rounds is kept. The ratio is also taken within each round
    (files measured seconds apart), whose median a drift across the rounds moves less."""
    samples = {name: {b: [] for b in BATCHES} for name in files}
    for _ in range(rounds):
        for name, path in files.items():
            for b in BATCHES:
                samples[name][b].append(images_per_s(path, images[:b]))
    rows = {name: {f"batch_{b}": round(float(np.median(runs[b])), 1) for b in BATCHES} for name, runs in samples.items()}
    fp32 = next(iter(files))
    for name, speeds in rows.items():
        for b in BATCHES:
            speeds[f"vs_fp32_batch_{b}"] = round(speeds[f"batch_{b}"] / rows[fp32][f"batch_{b}"], 2)
            speeds[f"batch_{b}_rounds"] = [round(x, 1) for x in samples[name][b]]
            per_round = [x / base for x, base in zip(samples[name][b], samples[fp32][b])]
            speeds[f"vs_fp32_batch_{b}_per_round"] = [round(r, 2) for r in per_round]
            speeds[f"vs_fp32_batch_{b}_median_of_rounds"] = round(float(np.median(per_round)), 2)
    return rows


def trained_bundle(bundle_path: Path, rounds: int) -> dict:
    from inspection.bundle import load_bundle
    from inspection.errors import BundleError

    bundle = load_bundle(bundle_path)
    int8_file = bundle.int8_onnx_path
    if int8_file is None or not int8_file.is_file():
        raise BundleError(f"{bundle_path} has no int8 model. Run `inspection export {bundle_path} --precision int8 --calib DATA` first.")
    spec = bundle.meta.input
    images = np.stack([prepare(render_item(5, i, CLASSES[i % 7], 320, 240).image, spec) for i in range(32)])
    return {"bundle": str(bundle_path), "architecture": bundle.meta.architecture, "input_px": spec.size_px,
            "int8_gate": bundle.meta.int8.model_dump(mode="json"),
            "speed": speed_rows({"fp32": bundle.onnx_path, "int8": int8_file}, images, rounds)}


def op_profile(path: Path, runs: int = 100) -> dict[str, float]:
    s = session(path, profile=True)
    frame = np.zeros((1, 224, 224, 3), np.uint8)
    for _ in range(runs):
        s.run(None, {"images": frame})
    profile_file = Path(s.end_profiling())
    trace = json.loads(profile_file.read_text())
    profile_file.unlink()
    per_op: collections.Counter = collections.Counter()
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / runs / 1000.0
    return {op: round(ms, 3) for op, ms in per_op.most_common(12)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_cpu.json"))
    parser.add_argument("--bundle", type=Path, help="a trained bundle with model.int8.onnx: measure it instead")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds of every measurement")
    args = parser.parse_args()
    if args.rounds < 1:
        raise ConfigError(f"--rounds {args.rounds} must be at least 1")
    result = {"machine": machine_description(), "versions": library_versions(), "threads": 2, "rounds": args.rounds,
              "seconds_per_measurement": SECONDS}
    if args.bundle is not None:
        result.update(trained_bundle(args.bundle, args.rounds))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({"int8_gate": result["int8_gate"], "speed": result["speed"]}, indent=1))
        return
    result["models"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model in ("resnet18", "mobilenet_v3_small"):
            bundle = untrained_bundle(model, 224, tmp / model)
            images = np.stack([prepare(render_item(5, i, CLASSES[i % 7], 320, 240).image, load_spec(bundle)) for i in range(32)])
            files = {"fp32": bundle / "model.onnx"}
            for name, options in VARIANTS.items():
                files[name] = tmp / f"{model}-{len(files)}.onnx"
                quantize_qdq(bundle / "model.onnx", files[name], images, **options)
            rows = speed_rows(files, images, args.rounds)
            if model == "mobilenet_v3_small":
                result["mobilenet_v3_small_profile_ms_per_image"] = {"fp32": op_profile(files["fp32"]),
                                                                      "int8": op_profile(files[next(iter(VARIANTS))])}
            result["models"][model] = rows
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["models"], indent=1))


def load_spec(bundle: Path):
    from inspection.bundle import load_bundle

    return load_bundle(bundle).meta.input


if __name__ == "__main__":
    sys.exit(run_guarded(main))
