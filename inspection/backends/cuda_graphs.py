"""Fixed-batch CUDA graphs with pinned, double-buffered host transfers (torch backend, CUDA only).

Small batches on a fast GPU are bound by kernel-launch overhead, not arithmetic: replaying a
captured graph launches the whole network at once. Graphs need fixed shapes and addresses, so one
graph is captured per batch size in `batch_sizes` (powers of two up to the largest) over static
device buffers, and a batch runs on the smallest graph that holds it (padding rows are ignored).

Transfers: a camera frame is copied once into pinned host memory (the station's prepared images
straight from the preparers' buffers: `infer` takes a list of them as it takes a batch), uploaded
as uint8 (4x fewer bytes than float) on a copy stream, and normalised on the GPU inside the model.
Two slots alternate, so `infer_stream` uploads batch k+1 while the GPU computes batch k. A large
batch is copied into pinned memory by several threads (staging.py: up to 4, one per 4 cores): one
thread's copy (3.4 ms for 256 images at 224 px on the 2-core machine, benchmarks/staging_copy.py)
plus the upload likely took longer than the H100 computed a batch, leaving the GPU idle between
batches (35,356 images/s end to end against 39,020 GPU-resident for resnet18 fp16).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspection.backends.staging import StagingCopier
from inspection.errors import BackendError

WARMUP_RUNS = 3


def graph_batch_sizes(max_batch: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to max_batch, and max_batch itself."""
    if max_batch < 1:
        raise BackendError(f"max_batch {max_batch} must be at least 1.")
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch)
    return tuple(sizes)


@dataclass(eq=False)
class _Slot:
    host_in: Any  # pinned uint8 (max_batch, H, W, C)
    device_in: Any  # uint8 on the GPU, the graphs' static input
    host_out: Any  # pinned float32 (max_batch, classes)
    uploaded: Any  # CUDA event: device_in holds this slot's batch
    done: Any  # CUDA event: host_out holds this slot's probabilities
    rows: int = 0


class CudaGraphRunner:
    """Runs `model` (uint8 NHWC -> probabilities) through captured graphs; one runner per model."""

    def __init__(self, torch: Any, model: Any, frame_shape: tuple[int, int, int], num_classes: int, max_batch: int) -> None:
        self._torch = torch
        self.batch_sizes = graph_batch_sizes(max_batch)
        self.max_batch = max_batch
        device = torch.device("cuda")
        self._compute = torch.cuda.Stream(device)
        self._copy = torch.cuda.Stream(device)
        self._slots = [
            _Slot(
                host_in=torch.empty((max_batch, *frame_shape), dtype=torch.uint8, pin_memory=True),
                device_in=torch.zeros((max_batch, *frame_shape), dtype=torch.uint8, device=device),
                host_out=torch.empty((max_batch, num_classes), dtype=torch.float32, pin_memory=True),
                uploaded=torch.cuda.Event(),
                done=torch.cuda.Event(),
            )
            for _ in range(2)
        ]
        self._graphs: list[dict[int, tuple[Any, Any]]] = [self._capture(model, slot) for slot in self._slots]
        self._next_slot = 0
        self._staging = StagingCopier()

    def _capture(self, model: Any, slot: _Slot) -> dict[int, tuple[Any, Any]]:
        torch = self._torch
        graphs: dict[int, tuple[Any, Any]] = {}
        with torch.inference_mode():
            # Warm-up on a side stream (cuDNN picks its algorithms, allocator settles), as capture requires.
            with torch.cuda.stream(self._compute):
                for size in self.batch_sizes:
                    for _ in range(WARMUP_RUNS):
                        model(slot.device_in[:size])
            torch.cuda.synchronize()
            pool = torch.cuda.graph_pool_handle()
            for size in sorted(self.batch_sizes, reverse=True):  # largest first lets the rest reuse its pool
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool, stream=self._compute):
                    output = model(slot.device_in[:size]).float()
                graphs[size] = (graph, output)
        torch.cuda.synchronize()
        return graphs

    def _graph_for(self, rows: int) -> int:
        return next(size for size in self.batch_sizes if size >= rows)

    def _submit(self, batch: np.ndarray | Sequence[np.ndarray]) -> _Slot:
        torch = self._torch
        rows = len(batch)
        number = self._next_slot
        slot = self._slots[number]
        self._next_slot = 1 - number
        slot.done.synchronize()  # the slot's previous batch has been read back
        self._staging.copy(slot.host_in[:rows].numpy(), batch)
        with torch.cuda.stream(self._copy):
            slot.device_in[:rows].copy_(slot.host_in[:rows], non_blocking=True)
            slot.uploaded.record(self._copy)
        graph, output = self._graphs[number][self._graph_for(rows)]
        self._compute.wait_event(slot.uploaded)
        with torch.cuda.stream(self._compute):
            graph.replay()
            slot.host_out[:rows].copy_(output[:rows], non_blocking=True)
            slot.done.record(self._compute)
        slot.rows = rows
        return slot

    @staticmethod
    def _collect(slot: _Slot) -> np.ndarray:
        slot.done.synchronize()
        return slot.host_out[: slot.rows].numpy().copy()

    def infer(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities for a batch: one array, or a list of images copied into pinned memory one by one."""
        return np.concatenate([self._collect(self._submit(chunk)) for chunk in self._chunks(batch)])

    def infer_stream(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Probabilities per batch (each at most max_batch rows), in order; batch k+1 is uploaded
        while batch k computes."""
        pending: _Slot | None = None
        for batch in batches:
            if len(batch) > self.max_batch:
                raise BackendError(f"infer_stream takes batches of at most {self.max_batch} rows, got {len(batch)}.")
            slot = self._submit(batch)
            if pending is not None:
                yield self._collect(pending)
            pending = slot
        if pending is not None:
            yield self._collect(pending)

    def replay_images_per_s(self, rows: int, seconds: float) -> float:
        """The graph alone on data already on the GPU: what the model costs without any transfer."""
        torch = self._torch
        graph, _ = self._graphs[0][self._graph_for(rows)]
        with torch.cuda.stream(self._compute):
            graph.replay()
        self._compute.synchronize()
        replays, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            with torch.cuda.stream(self._compute):
                for _ in range(10):
                    graph.replay()
            self._compute.synchronize()
            replays += 10
        return replays * rows / (time.perf_counter() - started)

    def close(self) -> None:
        self._staging.close()

    def _chunks(self, batch: np.ndarray | Sequence[np.ndarray]) -> list:
        return [batch[start : start + self.max_batch] for start in range(0, len(batch), self.max_batch)]
