"""The Ultralytics side of benchmarks/ultralytics_compare.py; runs in the separate bench venv only.

    .bench-venv/bin/python benchmarks/ultralytics_side.py export --out M.onnx [--imgsz 224]
    .bench-venv/bin/python benchmarks/ultralytics_side.py predict --model M.onnx --source FOLDER [--imgsz 224]
    .bench-venv/bin/python benchmarks/ultralytics_side.py raw --model M.onnx [--imgsz 224] [--seconds 5]

Each prints one JSON object on its last stdout line. Nothing is downloaded: the model is built from
its YAML with random weights, and Ultralytics is kept offline (settings in a temporary config dir,
no hub sync, no font or asset fetch; `socket` connections are refused as a guard).
"""

from __future__ import annotations

import os
import tempfile

# Before Ultralytics is imported: its settings file lives in a throw-away folder, and it must not
# phone home (sync / hub / version checks).
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultra-cfg-"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("ULTRALYTICS_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

_blocked: list[str] = []


def _no_network() -> None:
    """Refuse every outgoing connection, and remember the attempts: the run must stay offline."""
    original = socket.socket.connect

    def refuse(self, address):  # noqa: ANN001
        if isinstance(address, tuple) and address and address[0] not in ("127.0.0.1", "::1", "localhost"):
            _blocked.append(str(address))
            raise OSError(f"network blocked by benchmark: {address}")
        return original(self, address)

    socket.socket.connect = refuse  # type: ignore[method-assign]


def _versions() -> dict:
    import numpy
    import onnxruntime
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__, "python": sys.version.split()[0]}


def _offline_settings() -> None:
    """No analytics sync, no integrations; weights/runs/datasets folders in the throw-away config dir."""
    from ultralytics import settings

    scratch = Path(os.environ["YOLO_CONFIG_DIR"])
    wanted = {"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False, "raytune": False,
              "tensorboard": False, "wandb": False, "vscode_msg": False, "openvino_msg": False,
              "weights_dir": str(scratch / "weights"), "runs_dir": str(scratch / "runs"),
              "datasets_dir": str(scratch / "datasets")}
    settings.update({k: v for k, v in wanted.items() if k in settings})


def _session(autobackend):  # noqa: ANN001
    """The ONNX Runtime session inside Ultralytics' AutoBackend (8.4: on its format backend)."""
    return getattr(getattr(autobackend, "backend", None), "session", None) or getattr(autobackend, "session", None)


def export(out: Path, imgsz: int) -> dict:
    from ultralytics import YOLO

    _offline_settings()
    model = YOLO("yolo11n-cls.yaml", task="classify")  # built from the config: random weights, no download
    names = [model.names[i] for i in sorted(model.names)]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.chdir(out.parent)  # Ultralytics writes the export beside the model file: the YAML's name, in cwd
    exported = Path(model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=True, verbose=False))
    exported.resolve().replace(out)
    return {"onnx": str(out), "classes": names, "imgsz": imgsz}


def predict(model_path: Path, source: Path, imgsz: int) -> dict:
    """Ultralytics' own predict pipeline over the folder: its loader (cv2 decode), its preprocessing
    (PIL resize + centre crop + to-tensor), ONNX Runtime through AutoBackend, its Results objects."""
    from ultralytics import YOLO

    _offline_settings()
    files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png")
    model = YOLO(str(model_path), task="classify")
    # Warm up on one file, so model loading and session creation are not timed (the station's
    # throughput_fps does not count them either).
    for _ in model.predict(source=str(files[0]), imgsz=imgsz, verbose=False):
        pass
    count, started = 0, time.perf_counter()
    speeds = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    for result in model.predict(source=str(source), imgsz=imgsz, stream=True, verbose=False):
        _ = result.probs.top1  # read the answer, as a caller would
        for key in speeds:
            speeds[key] += result.speed.get(key) or 0.0
        count += 1
    elapsed = time.perf_counter() - started
    session = _session(model.predictor.model)
    threads = None
    if session is not None:
        options = session.get_session_options()
        threads = {"intra_op": options.intra_op_num_threads, "inter_op": options.inter_op_num_threads}
    return {"images": count, "seconds": elapsed, "images_per_s": count / elapsed,
            "mean_ms": {k: v / max(count, 1) for k, v in speeds.items()},
            "batch": model.predictor.args.batch, "ort_threads": threads}


def raw(model_path: Path, imgsz: int, seconds: float, batch: int) -> dict:
    """ONNX Runtime alone on an already-preprocessed tensor, session options as Ultralytics sets them."""
    import numpy as np
    from ultralytics.nn.autobackend import AutoBackend

    backend = AutoBackend(str(model_path), device=__import__("torch").device("cpu"), fp16=False)
    session = _session(backend)
    name = session.get_inputs()[0].name
    tensor = np.random.default_rng(0).random((batch, 3, imgsz, imgsz), dtype=np.float32)
    session.run(None, {name: tensor})
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: tensor})
        images += batch
    return {"batch": batch, "images_per_s": images / (time.perf_counter() - started)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["export", "predict", "raw", "versions"])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    _no_network()
    if args.command == "export":
        result = export(args.out, args.imgsz)
    elif args.command == "predict":
        result = predict(args.model, args.source, args.imgsz)
    elif args.command == "raw":
        result = raw(args.model, args.imgsz, args.seconds, args.batch)
    else:
        result = {}
    result["versions"] = _versions()
    result["network_attempts_blocked"] = _blocked
    print(json.dumps(result))


if __name__ == "__main__":
    main()
