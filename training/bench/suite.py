"""The benchmark matrix: model x backend x precision x batch size, plus station and training throughput."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inspection.bundle import INT8_ONNX_NAME, QuantizedModelEntry, load_bundle, reseal_with
from inspection.console import progress_bar
from inspection.errors import ConfigError, InspectionError
from inspection.preprocess import prepare
from inspection.synthetic.render import CLASSES, render_item
from training.bench.backend_speed import Combination, measure_combination
from training.bench.bundles import untrained_bundle
from training.bench.machine import machine_record
from training.bench.station_ratio import measure_station
from training.bench.training_speed import measure_training
from training.recipe import TrainRecipe
from training.quantize import METHOD, quantize_qdq

BACKEND_DEVICES = {"onnxruntime": ("cpu",), "torch": ("cpu", "cuda"), "tensorrt": ("cuda",)}
BACKEND_PRECISIONS = {"onnxruntime": ("fp32", "int8"), "torch": ("fp32", "fp16"), "tensorrt": ("fp32", "fp16", "int8")}
CALIBRATION_IMAGES = 32


def combinations(models, backends, precisions, batch_sizes, cuda: bool) -> list[Combination]:
    unknown = sorted(set(backends) - set(BACKEND_DEVICES))
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}; use {', '.join(BACKEND_DEVICES)}.")
    out = []
    for model, backend, precision, batch in itertools.product(models, backends, precisions, batch_sizes):
        if precision not in BACKEND_PRECISIONS[backend]:
            continue
        for device in BACKEND_DEVICES[backend]:
            if device == "cuda" and not cuda and backend == "torch":
                continue  # torch on the CPU is measured; on a machine without a GPU its CUDA rows say nothing
            if device == "cpu" and cuda and backend == "torch":
                continue  # on a GPU machine the torch rows are the GPU's
            if backend == "torch" and device == "cpu" and precision == "fp16":
                continue
            out.append(Combination(model, backend, device, precision, batch))
    return out


def bundle_for(model: str, size_px: int, cache: Path, with_int8: bool) -> Path:
    recipe = TrainRecipe()
    path = untrained_bundle(model, size_px, cache / f"{model}-{size_px}-crop{recipe.item_crop_fraction}-{recipe.shrink.value}")
    bundle = load_bundle(path)
    if with_int8 and bundle.meta.int8 is None:
        spec = bundle.meta.input
        images = np.stack([prepare(render_item(5, i, CLASSES[i % len(CLASSES)], 320, 240).image, spec)
                           for i in range(CALIBRATION_IMAGES)])
        with tempfile.TemporaryDirectory() as tmp:
            quantize_qdq(bundle.onnx_path, Path(tmp) / INT8_ONNX_NAME, images)
            entry = QuantizedModelEntry(method=METHOD, calibration={"images": CALIBRATION_IMAGES, "split": "synthetic"},
                                        parity={"not_measured": "untrained benchmark model: speed only"}, parity_overridden=True)
            reseal_with(bundle, {INT8_ONNX_NAME: Path(tmp) / INT8_ONNX_NAME}, bundle.meta.model_copy(update={"int8": entry}))
    return path


def run_suite(models, backends, precisions, batch_sizes, budget_s: float, size_px: int, threads: int | None,
              station_frames: int, training: bool, cache: Path, progress: bool = True,
              on_row: Callable[[dict], None] | None = None) -> dict:
    """The whole matrix; `on_row` gets the result so far after every row (a run cut short by a time
    limit still leaves what it measured)."""
    machine = machine_record()
    cuda = machine["gpu"] is not None
    combos = combinations(models, backends, precisions, batch_sizes, cuda)
    per_combo_s = budget_s / max(1, len(combos))
    result = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine,
        "settings": {"models": list(models), "backends": list(backends), "precisions": list(precisions),
                     "batch_sizes": list(batch_sizes), "budget_s": budget_s, "size_px": size_px, "threads": threads},
        "backends": [],
        "station": [],
        "training": [],
    }

    def add(section: str, row: dict) -> None:
        result[section].append(row)
        if on_row is not None:
            on_row(result)

    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("bench", total=len(combos) + len(models) * (2 if training else 1))
        for combo in combos:
            bar.update(task, description=combo.key())
            path = bundle_for(combo.model, size_px, cache, with_int8="int8" in precisions)
            add("backends", measure_combination(load_bundle(path), combo, per_combo_s, threads))
            bar.advance(task)
        for model in models:
            path = bundle_for(model, size_px, cache, with_int8=False)
            backend, device, precision = ("torch", "cuda", "fp16") if cuda else ("onnxruntime", "cpu", "fp32")
            batch = 64 if cuda else 8
            bar.update(task, description=f"station {model}")
            # A GPU station has cores to spare for preparing frames, with threads or with processes (which
            # is faster depends on the host: both are measured); a CPU station's cores run the model.
            preparers = max(1, min(8, (os.cpu_count() or 2) - 4))
            for preparation in ({"prepare_threads": preparers}, {"prepare_processes": preparers}) if cuda else ({},):
                try:
                    row = measure_station(path, backend, device, precision, batch, station_frames, threads, preparation)
                except InspectionError as exc:  # e.g. no room in /dev/shm for the processes: keep the other rows
                    row = {"backend": backend, "device": device, "precision": precision, "max_batch": batch,
                           "preparation": {way.removeprefix("prepare_"): count for way, count in preparation.items()},
                           "failed": str(exc)}
                add("station", dict(row, model=model))
            bar.advance(task)
            if training:
                bar.update(task, description=f"training {model}")
                add("training", measure_training(model, size_px, 64 if cuda else 32, "cuda" if cuda else "cpu"))
                bar.advance(task)
    return result
