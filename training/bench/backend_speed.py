"""Raw backend speed: throughput and per-call latency for one bundle, backend, precision and batch size."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from inspection.backends import Backend, open_backend
from inspection.bundle import Bundle
from inspection.errors import BackendError

WARMUP_CALLS = 5


@dataclass(frozen=True)
class Combination:
    model: str
    backend: str  # onnxruntime, torch, tensorrt
    device: str  # cpu, cuda
    precision: str  # fp32, fp16, int8
    batch_size: int

    def key(self) -> str:
        return f"{self.model}/{self.backend}/{self.device}/{self.precision}/b{self.batch_size}"


def random_batch(bundle: Bundle, batch_size: int) -> np.ndarray:
    spec = bundle.meta.input
    return np.random.default_rng(0).integers(0, 256, (batch_size, spec.size_px, spec.size_px, spec.channels), dtype=np.uint8)


def measure_backend(backend: Backend, batch: np.ndarray, budget_s: float) -> dict:
    """Half the budget for latency (one call at a time), half for throughput (pipelined where the backend can)."""
    for _ in range(WARMUP_CALLS):
        backend.infer(batch)
    latencies_ms: list[float] = []
    deadline = time.perf_counter() + budget_s / 2
    while time.perf_counter() < deadline or len(latencies_ms) < 10:
        started = time.perf_counter()
        backend.infer(batch)
        latencies_ms.append((time.perf_counter() - started) * 1e3)
    stream = getattr(backend, "infer_stream", None)
    calls, started = 0, time.perf_counter()
    deadline = started + budget_s / 2
    while time.perf_counter() < deadline or calls < 10:
        if stream is not None:
            for _ in stream(batch for _ in range(16)):
                calls += 1
        else:
            backend.infer(batch)
            calls += 1
    seconds = time.perf_counter() - started
    return {
        "images_per_s": round(calls * len(batch) / seconds, 1),
        "latency_ms": {"p50": round(float(np.percentile(latencies_ms, 50)), 3),
                       "p99": round(float(np.percentile(latencies_ms, 99)), 3),
                       "calls": len(latencies_ms)},
    }


def measure_combination(bundle: Bundle, combo: Combination, budget_s: float, threads: int | None) -> dict:
    """One result row; a combination this machine cannot run is a row saying why, never a silent omission."""
    row = {"key": combo.key(), "model": combo.model, "backend": combo.backend, "device": combo.device,
           "precision": combo.precision, "batch_size": combo.batch_size}
    try:
        options = {"device": combo.device, "threads": threads, "precision": combo.precision}
        if combo.backend != "onnxruntime":
            options["max_batch"] = combo.batch_size
        backend = open_backend(combo.backend, bundle, **options)
    except BackendError as exc:
        return dict(row, skipped=str(exc))
    try:
        measured = measure_backend(backend, random_batch(bundle, combo.batch_size), budget_s)
        replay = getattr(backend, "replay_images_per_s", None)
        if replay is not None and (on_gpu := replay(combo.batch_size, min(2.0, budget_s / 4))) is not None:
            measured["gpu_resident_images_per_s"] = round(on_gpu, 1)  # the model alone, no host transfers
        return dict(row, description=backend.description, **measured)
    finally:
        backend.close()
