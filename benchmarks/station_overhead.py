"""The station's own cost per frame: the synthetic line through the whole pipeline with a model that
costs nothing, so that what is measured is capture, numbering, tracking at the gate, preparing,
batching, deciding and publishing.

    .venv/bin/python benchmarks/station_overhead.py BUNDLE [--frames N] [--prepare-threads 1,2]
        [--prepare-processes 1,2] [--elsewhere-ms MS] [--out FILE]

Per number of preparer threads (`batching.prepare_threads`), two runs, unpaced, no archive, batch 64,
one inference worker (as a GPU station runs):
  prepare "real"     the station with the free model: its ceiling on this machine, whatever the GPU.
                     A backend faster than this cannot be kept 90% busy by this station.
  prepare "free"     the same with `prepare` handing back a ready image: the rest of the per-item path.
  station_process_cpu_us_per_frame   CPU time of the station's own process (all its threads, not its
                     preparer processes) per frame: with preparer processes, what a host with more
                     cores cannot spread; also split into user and system time, and the process's
                     context switches (voluntary and not) per frame; and split by thread
                     (`ThreadCpuSampler`, /proc/self/task read every 20 ms: its own small cost is in
                     the process's figures, not in any thread's).
Per number of preparer processes (`batching.prepare_processes`), the same two runs; in the free one
the workers answer at once without preparing anything (`answer_without_preparing`), so it measures the
hand-over: the station process's ceiling with processes, however many cores prepare. Each twice:
frames "in place" (the line's frames in shared memory, read there by the workers, as the station
runs) and "copied" (the line's frames in its own arrays, copied into a worker's slot each time).
With --elsewhere-ms, a third run in place, prepare "elsewhere": the workers sleep that long a frame
instead of preparing it. On a machine with few cores it shows the station as a host with a core for
every worker would run it: each frame takes a worker as long as preparing it does, but no core of
the station's. A worker answers the frames that waited for it in one message, as the real worker does.
And preparation alone, one thread, on the line's frames in the order the line draws them (256
distinct 640x480 frames, 236 MB: mostly not in the CPU's caches, as a camera's fresh frames are not):
milliseconds per frame to locate the item, to prepare the frame with each shrink mode, and to copy it
into shared memory (what handing it to a preparer process costs the station process first).
The free model answers "good" for every item at once, after copying the batch into its own input
memory as a GPU backend copies it into pinned memory (until the twenty-third session it copied
nothing: the station's stacked batch was then the one copy; now the station hands over the prepared
images unstacked, and this copy is the one). It stands in for a GPU this machine lacks; it is a
measuring tool, not a backend (it never leaves this script).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

import station.pipeline
import station.prepare_processes
import station.runner
from inspection.backends import BackendKind
from inspection.backends.staging import StagingCopier
from inspection.bundle import load_bundle
from inspection.cli import run_guarded
from inspection.errors import ConfigError, InspectionError
from inspection.input_spec import ShrinkMode
from inspection.item_crop import locate_item
from inspection.preprocess import prepare
from station.config import StationConfig
from station.pipeline import StationPipeline
from station.runner import RunLimits, run_station
from station.sources.synthetic_line import SyntheticLineSource
from training.bench.result_file import write_or_print
from training.versions import library_versions, machine_description

MAX_BATCH = 64


class FreeModel:
    """Computes nothing. Like a GPU backend it copies every batch into its own input memory (pinned
    memory there, its staging copy: `StagingCopier`, with as many threads as a GPU backend would have
    on this host), so the station is measured with the one copy of each image it makes on a GPU host."""

    kind = BackendKind.ONNXRUNTIME
    description = "free model (station_overhead.py): every item good, no computation, one staging copy"

    def __init__(self, classes: int, good_index: int, frame_shape: tuple[int, int, int], max_batch: int) -> None:
        self._answer = np.zeros(classes, dtype=np.float32)
        self._answer[good_index] = 1.0
        self._input = np.zeros((max_batch, *frame_shape), dtype=np.uint8)
        self._staging = StagingCopier()

    def infer(self, batch: np.ndarray | list[np.ndarray]) -> np.ndarray:
        rows = len(batch)
        self._staging.copy(self._input[:rows], batch)
        return np.broadcast_to(self._answer, (rows, len(self._answer))).copy()

    def infer_images(self, images: list[np.ndarray]) -> np.ndarray:
        return self.infer(images)

    def close(self) -> None:
        self._staging.close()


def answer_without_preparing(wall_ms_per_frame: float, connection: Connection, spec) -> None:
    """A preparer process that prepares nothing: it answers each group of frames waiting for it, as the
    real worker does, after sleeping `wall_ms_per_frame` for each (0: at once). A measuring tool."""
    connection.send("ready")
    if connection.recv() is None:  # the prepared buffers' names; None: closed before
        return
    ended = False
    while not ended:
        messages, ended = station.prepare_processes.waiting_frames(connection)
        if messages:
            time.sleep(len(messages) * wall_ms_per_frame / 1000)
            connection.send([(message[0], None, wall_ms_per_frame) for message in messages])


@contextlib.contextmanager
def workers_without_preparing(wall_ms_per_frame: float | None) -> Iterator[None]:
    """Preparer processes started inside run `answer_without_preparing` (they are spawned with whatever
    `serve` is then); None: the real worker."""
    real_serve = station.prepare_processes.serve
    if wall_ms_per_frame is not None:
        station.prepare_processes.serve = functools.partial(answer_without_preparing, wall_ms_per_frame)
    try:
        yield
    finally:
        station.prepare_processes.serve = real_serve


class ThreadCpuSampler:
    """CPU time of each of this process's threads, by thread name, read from /proc/self/task every
    `every_s` (a thread that ends keeps its last reading, so at most that much of its time is missed):
    which thread's work the station process's CPU per frame is. Threads Python did not start
    (ONNX Runtime's, OpenCV's) are counted as "other"; the sampler itself is left out."""

    def __init__(self, every_s: float = 0.02) -> None:
        self._every_s, self._ticks_per_s = every_s, os.sysconf("SC_CLK_TCK")
        self._seconds: dict[int, tuple[str, float]] = {}  # native thread id -> (name, user + system seconds)
        self._start: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_done, name="cpu-sampler", daemon=True)

    def __enter__(self) -> ThreadCpuSampler:
        self._start = {tid: seconds for tid, (_, seconds) in self._read().items()}
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()
        self._seconds.update(self._read())

    def _sample_until_done(self) -> None:
        while not self._done.wait(self._every_s):
            self._seconds.update(self._read())

    def _read(self) -> dict[int, tuple[str, float]]:
        names = {thread.native_id: thread.name for thread in threading.enumerate()}
        readings = {}
        for task in Path("/proc/self/task").iterdir():
            tid = int(task.name)
            if tid == self._thread.native_id:
                continue
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
                continue
            user_ticks, system_ticks = int(fields[11]), int(fields[12])  # stat fields 14 and 15
            readings[tid] = (names.get(tid, "other"), (user_ticks + system_ticks) / self._ticks_per_s)
        return readings

    def us_per_frame_by_thread(self, frames: int) -> dict[str, float]:
        spent: Counter[str] = Counter()
        for tid, (name, seconds) in self._seconds.items():
            spent[name] += seconds - self._start.get(tid, 0.0)
        return {name: round(seconds * 1e6 / frames, 1) for name, seconds in spent.most_common() if seconds > 0}


def measured_commit() -> str | None:
    """The commit of the station code measured (the checkout `station` was imported from), "+changes"
    when its station/ or inspection/ has uncommitted ones; None outside a git checkout (a copy on a GPU
    machine)."""
    checkout = str(Path(station.pipeline.__file__).parent.parent)
    try:
        commit = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", checkout, "status", "--porcelain", "--untracked-files=no", "--",
                                  "station", "inspection"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


def shared_memory_copy_us(images: list[np.ndarray], buffers: int = 3) -> float:
    """Microseconds per frame to copy each frame into one of `buffers` shared-memory buffers, in turn:
    what handing a frame over costs the station process first."""
    slots = [SharedMemory(create=True, size=images[0].nbytes) for _ in range(buffers)]
    try:
        started = time.perf_counter()
        for number, image in enumerate(images):
            np.copyto(np.ndarray(image.shape, image.dtype, buffer=slots[number % buffers].buf), image)
        return round((time.perf_counter() - started) * 1e6 / len(images), 1)
    finally:
        for memory in slots:
            memory.close()
            memory.unlink()


@contextlib.contextmanager
def frames_copied_to_preparers(enabled: bool) -> Iterator[None]:
    """The source builds its frames in its own arrays, not in shared memory: every frame handed to a
    preparer process is copied into its slot (as before the twentieth session, and for video sources)."""
    real_build = station.runner.build_source
    if enabled:
        station.runner.build_source = lambda config, frames, progress, shared_frames=None: real_build(config, frames, progress)
    try:
        yield
    finally:
        station.runner.build_source = real_build


def run(bundle_path: Path, frames: int, preparation: dict, prepare_mode: str, product: str,
        copy_frames: bool = False, elsewhere_ms: float = 0.0) -> dict:
    """prepare_mode: "real", "free" or, for processes only, "elsewhere" (workers that sleep
    `elsewhere_ms` a frame instead of preparing it)."""
    bundle = load_bundle(bundle_path)
    names = bundle.meta.class_names
    spec = bundle.meta.input
    frame_shape = (spec.size_px, spec.size_px, spec.channels)
    model = FreeModel(len(names), names.index(bundle.meta.good_classes[0]), frame_shape, MAX_BATCH)
    ready = np.zeros(frame_shape, dtype=np.uint8)
    real_open, real_prepare, real_run = station.runner.open_backend, station.pipeline.prepare, StationPipeline.run
    station.runner.open_backend = lambda *args, **kwargs: model
    if prepare_mode == "free":
        station.pipeline.prepare = lambda image, spec: ready
    spent = {}
    sampler = ThreadCpuSampler()

    def run_counting_cpu(pipeline, *args, **kwargs):
        # This process's threads only (ended ones too): preparer processes are not counted.
        started, usage = os.times(), resource.getrusage(resource.RUSAGE_SELF)
        try:
            with sampler:
                return real_run(pipeline, *args, **kwargs)
        finally:
            ended, usage_ended = os.times(), resource.getrusage(resource.RUSAGE_SELF)
            spent.update(user_s=ended.user - started.user, system_s=ended.system - started.system,
                         switches=(usage_ended.ru_nvcsw + usage_ended.ru_nivcsw) - (usage.ru_nvcsw + usage.ru_nivcsw))

    StationPipeline.run = run_counting_cpu
    try:
        config = StationConfig.model_validate({
            "bundle": bundle_path,
            "backend": {"kind": "onnxruntime", "precision": "fp32"},
            "batching": {"max_batch": MAX_BATCH, "queue_size": 256, "inference_workers": 1, **preparation},
            "source": {"kind": "synthetic", "defect_rate": 0.02, "seed": 11, "product": product},
        })
        worker_wall_ms = {"real": None, "free": 0.0, "elsewhere": elsewhere_ms}[prepare_mode]
        with workers_without_preparing(worker_wall_ms), frames_copied_to_preparers(copy_frames):
            summary = run_station(config, RunLimits(frames=frames), progress=False)
    finally:
        station.runner.open_backend, station.pipeline.prepare, StationPipeline.run = real_open, real_prepare, real_run
    return {"frames": summary["frames"], "fps": round(summary["throughput_fps"], 1),
            "core_us_per_frame_if_serial": round(1e6 / summary["throughput_fps"], 1),
            "station_process_cpu_us_per_frame": round((spent["user_s"] + spent["system_s"]) * 1e6 / summary["frames"], 1),
            "station_process_user_us_per_frame": round(spent["user_s"] * 1e6 / summary["frames"], 1),
            "station_process_system_us_per_frame": round(spent["system_s"] * 1e6 / summary["frames"], 1),
            "station_process_context_switches_per_frame": round(spent["switches"] / summary["frames"], 2),
            "station_thread_cpu_us_per_frame": sampler.us_per_frame_by_thread(summary["frames"]),
            "mean_batch_size": summary.get("mean_batch_size"), "prepare_ms": summary["stage_ms"]["prepare"],
            "preparation": summary["preparation"]}


def line_frames(frames: int, product: str) -> list[np.ndarray]:
    """The synthetic line's frames in the order the line draws them (the station runs' seed)."""
    source = SyntheticLineSource(defect_rate=0.02, seed=11, frames=frames, progress=False, product=product)
    source.open()
    try:
        return [source.read().image for _ in range(frames)]
    finally:
        source.close()


def preparation_alone(bundle_path: Path, frames: int, product: str) -> dict:
    spec = load_bundle(bundle_path).meta.input
    images = line_frames(frames, product)

    def ms_per_frame(step) -> float:
        started = time.perf_counter()
        for image in images:
            step(image)
        return round((time.perf_counter() - started) * 1000 / len(images), 3)

    return {"frames": frames, "locate_item_ms": ms_per_frame(locate_item),
            "copy_into_shared_memory_ms": round(shared_memory_copy_us(images, buffers=1) / 1000, 3),
            "prepare_ms_by_shrink": {mode.value: ms_per_frame(lambda image, s=spec.model_copy(update={"shrink": mode}): prepare(image, s))
                                     for mode in ShrinkMode}}


def counts_option(flag: str, text: str) -> list[int]:
    try:
        counts = [int(value) for value in text.split(",") if value.strip()]
    except ValueError:
        raise ConfigError(f"{flag} '{text}' must be whole numbers separated by commas, e.g. 1,2,8.") from None
    if any(count < 1 for count in counts):
        raise ConfigError(f"every {flag} count must be at least 1.")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--prepare-threads", default="1,2", help="comma-separated preparer thread counts")
    parser.add_argument("--prepare-processes", default="", help="comma-separated preparer process counts (none by default)")
    parser.add_argument("--elsewhere-ms", type=float, default=None,
                        help="also run each process count, in place, with workers that sleep this long a frame")
    parser.add_argument("--product", default="white-round-scored")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    threads, processes = counts_option("--prepare-threads", args.prepare_threads), counts_option("--prepare-processes", args.prepare_processes)
    if args.frames < 1:
        raise ConfigError("--frames must be at least 1.")
    result = {"machine": machine_description(), "cores": len(os.sched_getaffinity(0)), "versions": library_versions(),
              "station_code": measured_commit(), "bundle": str(args.bundle), "input": load_bundle(args.bundle).meta.input.model_dump(mode="json"),
              "product": args.product, "frames": args.frames, "free_model": FreeModel.description, "runs": []}
    elsewhere = ("elsewhere",) if args.elsewhere_ms is not None else ()
    plan = ([({"prepare_threads": count}, mode, False) for count in threads for mode in ("real", "free")]
            + [({"prepare_processes": count}, mode, copy) for count in processes for copy in (False, True)
               for mode in ("real", "free", *(elsewhere if not copy else ()))])
    for preparation, prepare_mode, copy_frames in plan:
        frames_are = {"frame_memory": "copied" if copy_frames else "in place"} if "prepare_processes" in preparation else {}
        try:
            row = run(args.bundle, args.frames, preparation, prepare_mode, args.product, copy_frames, args.elsewhere_ms or 0.0)
        except InspectionError as exc:  # e.g. no room in /dev/shm for the processes' frames: keep the other rows
            row = {"failed": str(exc)}
        result["runs"].append({**preparation, **frames_are, "prepare": prepare_mode, **row})
        outcome = row["failed"] if "failed" in row else f"{row['fps']:,.0f} frames/s"
        print(f"{preparation} {frames_are}, prepare {prepare_mode}: {outcome}", file=sys.stderr)
    result["preparation_alone"] = preparation_alone(args.bundle, min(args.frames, 3000), args.product)
    print(f"preparation alone: {result['preparation_alone']}", file=sys.stderr)
    write_or_print(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
