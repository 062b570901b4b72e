"""int8 (ONNX Runtime static QDQ) against fp32 on this CPU, and where mobilenet_v3_small's int8 time goes.

    .venv/bin/python benchmarks/int8_cpu.py [--out benchmarks/results/int8_cpu.json]
    .venv/bin/python benchmarks/int8_cpu.py --bundle TRAINED [--rounds N] --out benchmarks/results/int8_trained_cpu.json

For resnet18 and mobilenet_v3_small at 224 px (untrained weights: speed does not depend on their
values; the parity gate needs a trained model and is measured by `inspection export`): images/s at
batch 1 and 8 with 2 threads for fp32 and three quantization variants, each run as the ONNX Runtime
backend runs it (wide convolutions routed to the int8 GEMM, inspection/backends/int8_conv_kernels.py),
plus the first variant as stored (medians of 3 alternating rounds); per int8 convolution of resnet18,
its time on each kernel; and an ONNX Runtime profile (time per operator type) of fp32 and int8
mobilenet_v3_small.

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
import onnx
import onnxruntime as ort

from inspection.backends.int8_conv_kernels import MIN_GEMM_KERNEL_DIM, route_wide_convolutions_to_gemm
from inspection.preprocess import prepare
from inspection.synthetic.render import CLASSES, render_item
from training.bench.bundles import untrained_bundle
from training.quantize import QUANTIZATION_SCOPES, quantize_qdq
from training.versions import library_versions, machine_description
from inspection.cli import run_guarded
from inspection.errors import ConfigError
from training.bench.result_file import write_result

SECONDS = 2.0
ROUNDS = 3
BATCHES = (1, 8)
VARIANTS = {
    "per_channel, every operator (the export's first choice)": {"op_types_to_quantize": QUANTIZATION_SCOPES[0].op_types},
    "per_tensor": {"per_channel": False},
    "per_channel, convolutions only (its second choice)": {"op_types_to_quantize": QUANTIZATION_SCOPES[1].op_types},
}
# Every int8 row runs its file as the ONNX Runtime backend does (wide convolutions routed to the int8
# GEMM) except this one, the export's first choice as stored: every convolution on the direct kernel.
AS_STORED = "per_channel, every operator, as stored (no convolution routed to the GEMM)"


def routed_copy(int8_file: Path, out: Path, min_kernel_dim: int = MIN_GEMM_KERNEL_DIM) -> Path:
    """`int8_file` as the ONNX Runtime CPU backend runs it (or with another threshold), written to `out`."""
    model = onnx.load(str(int8_file))
    route_wide_convolutions_to_gemm(model, min_kernel_dim)
    onnx.save(model, str(out))
    return out


def routing_check(stored: Path, routed: Path, images: np.ndarray) -> dict:
    """The routing must not change a result: the largest probability difference between the two forms."""
    routed_session, stored_session = session(routed), session(stored)
    difference = max(float(np.abs(routed_session.run(None, {"images": images[i:i + 8]})[0]
                                  - stored_session.run(None, {"images": images[i:i + 8]})[0]).max())
                     for i in range(0, len(images), 8))
    return {"convolutions_routed": route_wide_convolutions_to_gemm(onnx.load(str(stored))), "images": len(images),
            "max_abs_probability_difference": difference}


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
    with tempfile.TemporaryDirectory() as tmp:
        routed = routed_copy(int8_file, Path(tmp) / "routed.onnx")
        files = {"fp32": bundle.onnx_path, "int8": routed, "int8, as stored (no convolution routed to the GEMM)": int8_file}
        return {"bundle": str(bundle_path), "architecture": bundle.meta.architecture, "input_px": spec.size_px,
                "int8_gate": bundle.meta.int8.model_dump(mode="json"), "routed_vs_stored": routing_check(int8_file, routed, images),
                "speed": speed_rows(files, images, rounds)}


def node_times(path: Path, batch: int = 1, runs: int = 100) -> dict[str, tuple[str, float]]:
    """ONNX Runtime's profile of `runs` calls on a batch of zero frames: node -> (operator, ms per call)."""
    s = session(path, profile=True)
    frames = np.zeros((batch, 224, 224, 3), np.uint8)
    s.run(None, {"images": frames})
    for _ in range(runs):
        s.run(None, {"images": frames})
    profile_file = Path(s.end_profiling())
    trace = json.loads(profile_file.read_text())
    profile_file.unlink()
    times: dict[str, tuple[str, float]] = {}
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            op, ms = times.get(node, (event["args"]["op_name"], 0.0))
            times[node] = (op, ms + event["dur"] / (runs + 1) / 1000.0)
    return times


def op_profile(path: Path) -> dict[str, float]:
    per_op: collections.Counter = collections.Counter()
    for op, ms in node_times(path).values():
        per_op[op] += ms
    return {op: round(ms, 3) for op, ms in per_op.most_common(12)}


def conv_kernel_profile(stored: Path) -> list[dict]:
    """Per int8 convolution: its kernel_dim and ms per call on the direct kernel (the file as stored)
    and on the GEMM (every convolution routed), at batch 1 and 8. What MIN_GEMM_KERNEL_DIM is set from."""
    everything = routed_copy(stored, stored.with_name(f"{stored.stem}-all-routed.onnx"), min_kernel_dim=1)
    model = onnx.load(str(stored))
    constants = {t.name: t for t in model.graph.initializer}
    kernel_dims = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants and len(constants[node.input[0]].dims) == 4:
            kernel_dims[node.output[0]] = int(np.prod(constants[node.input[0]].dims[1:]))
    conv_dims = {node.name: kernel_dims[node.input[1]] for node in model.graph.node
                 if node.op_type == "Conv" and node.input[1] in kernel_dims}
    rows = {}
    for batch in BATCHES:
        for label, path in (("direct", stored), ("gemm", everything)):
            for node, (op, ms) in node_times(path, batch, runs=30).items():
                if op == "QLinearConv":
                    conv = max((name for name in conv_dims if node.startswith(name)), key=len, default=None)
                    row = rows.setdefault(node.split("_token")[0], {"kernel_dim": conv_dims.get(conv)})
                    row[f"{label}_ms_batch_{batch}"] = round(ms, 3)
    everything.unlink()
    return [{"conv": name, **row, "routed": row["kernel_dim"] is not None and row["kernel_dim"] >= MIN_GEMM_KERNEL_DIM}
            for name, row in rows.items()]


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
        write_result(args.out, result)
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
                stored = tmp / f"{model}-{len(files)}-stored.onnx"
                quantize_qdq(bundle / "model.onnx", stored, images, **options)
                files[name] = routed_copy(stored, tmp / f"{model}-{len(files)}.onnx")
                if name == next(iter(VARIANTS)):
                    files[AS_STORED] = stored
            rows = speed_rows(files, images, args.rounds)
            result.setdefault("routed_vs_stored", {})[model] = routing_check(files[AS_STORED], files[next(iter(VARIANTS))], images)
            if model == "resnet18":
                result["resnet18_int8_convolution_kernels_ms"] = conv_kernel_profile(files[AS_STORED])
            if model == "mobilenet_v3_small":
                result["mobilenet_v3_small_profile_ms_per_image"] = {"fp32": op_profile(files["fp32"]),
                                                                      "int8": op_profile(files[next(iter(VARIANTS))])}
            result["models"][model] = rows
    write_result(args.out, result)
    print(json.dumps(result["models"], indent=1))


def load_spec(bundle: Path):
    from inspection.bundle import load_bundle

    return load_bundle(bundle).meta.input


if __name__ == "__main__":
    sys.exit(run_guarded(main))
