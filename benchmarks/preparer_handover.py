"""What handing a frame to a preparer process costs the station process (station/prepare_processes.py).

    .venv/bin/python benchmarks/preparer_handover.py BUNDLE [--frames N] [--processes N] [--out FILE]

On the synthetic line's frames (256 distinct 640x480 frames by default, in the order the line draws
them), per frame, outside the station:
  copy_us            copying the frame into one of 3 shared-memory buffers: the part of a hand-over
                     that grows with the frame
  handover_copied_*  `PreparerProcesses.submit` for every frame, then waiting for every result, with
                     workers that answer at once without preparing anything: the hand-over alone,
                     each frame copied into a worker's slot
  prepared_copied_*  the same with real preparation (the bundle's `prepare`)
  *_in_place_*       the same with the frames in shared memory (`station.shared_frames`, as a station
                     with preparer processes builds them), read by the workers in place
`*_thread_cpu_us` is the CPU the submitting thread spent per frame, `*_wall_us` the wall time per
frame. The station process also spends CPU on the collector thread that takes the results back;
`benchmarks/station_overhead.py` measures the whole station process.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from inspection.bundle import load_bundle
from inspection.cli import run_guarded
from inspection.errors import ConfigError
from station.prepare_processes import PreparerProcesses
from station.shared_frames import SharedFrames
from station_overhead import line_frames, measured_commit, shared_memory_copy_us, workers_without_preparing  # this folder's
from training.bench.result_file import write_or_print
from training.versions import library_versions, machine_description


def hand_over(images: list[np.ndarray], spec, processes: int, in_place: bool) -> dict:
    shared = SharedFrames() if in_place else None
    if shared is not None:
        copies: dict[int, np.ndarray] = {}  # the line's frames repeat its pool: one shared copy of each
        for image in images:
            if id(image) not in copies:
                copies[id(image)] = shared.copy_of(image)
        images = [copies[id(image)] for image in images]
    preparers = PreparerProcesses(spec, processes, shared)
    results, errors = threading.Semaphore(0), []

    def on_done(prepared, error, prepare_ms):
        if error is not None:
            errors.append(error)
        else:
            prepared.release()
        results.release()

    try:
        cpu_started, wall_started = time.thread_time(), time.perf_counter()
        for image in images:
            preparers.submit(image, on_done, wait=True)
        cpu_s = time.thread_time() - cpu_started
        for _ in images:
            results.acquire()
        wall_s = time.perf_counter() - wall_started
    finally:
        preparers.close()
        if shared is not None:
            shared.close()
    if errors:
        raise ConfigError(f"{len(errors)} frames failed to prepare, the first: {errors[0]}")
    return {"thread_cpu_us": round(cpu_s * 1e6 / len(images), 1), "wall_us": round(wall_s * 1e6 / len(images), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--product", default="white-round-scored")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.frames < 1 or args.processes < 1:
        raise ConfigError("--frames and --processes must be at least 1.")
    spec = load_bundle(args.bundle).meta.input
    images = line_frames(args.frames, args.product)
    result = {"machine": machine_description(), "cores": len(os.sched_getaffinity(0)), "versions": library_versions(),
              "station_code": measured_commit(), "bundle": str(args.bundle), "frames": args.frames, "frame_shape": list(images[0].shape),
              "processes": args.processes, "copy_us": shared_memory_copy_us(images)}
    for frames_are, in_place in (("copied", False), ("in_place", True)):
        with workers_without_preparing(0.0):
            result[f"handover_{frames_are}"] = hand_over(images, spec, args.processes, in_place)
        result[f"prepared_{frames_are}"] = hand_over(images, spec, args.processes, in_place)
        print(f"frames {frames_are}: hand-over {result[f'handover_{frames_are}']}; "
              f"prepared {result[f'prepared_{frames_are}']}", file=sys.stderr)
    print(f"copy {result['copy_us']} µs", file=sys.stderr)
    write_or_print(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
