"""Build a station from its config, run it, and summarise what happened to every item."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.live import Live

from inspection.backends import Backend, BackendKind, open_backend
from inspection.bundle import Bundle, ensure_not_in_bundle, load_bundle
from inspection.console import stderr_console
from inspection.decision import Verdict
from inspection.errors import BackendError, BackendUnavailableError, BundleError, BundleIntegrityError, ConfigError, OutputExistsError
from inspection.preprocess import prepare, to_model_input
from station.archive import Archive, ArchiveError, ArchiveWriter, verify_archive
from station.archive.store import INDEX_NAME
from station.config import (
    FolderSourceSettings,
    ModbusOutputSettings,
    OpenCvSourceSettings,
    PylonSourceSettings,
    StationConfig,
    SyntheticSourceSettings,
)
from station.garbage_collection import startup_objects_frozen
from station.geometry import frame_size_warning
from station.latency_plot import write_latency_histogram
from station.metrics import serve_metrics
from station.pipeline import PipelineSettings, StationPipeline, prepared_images_held_at_most
from station.prepare_processes import PreparerProcesses
from station.shared_frames import SharedFrames
from station.sequence_ledger import SequenceLedger, ledger_path, recover_in_flight
from station.signalling import ModbusPlcOutput, RejectGate, ResultOutput, SimulatedRejector
from station.signalling.thread_priority import check_realtime_allowed
from station.sources import FrameSource

RAW_FPS_SECONDS = 1.5
CPU_INFERENCE_WORKERS = 2  # default for ONNX Runtime on a CPU: see BatchingSettings.inference_workers
SIMULATED_OUTPUT_HISTORY = 10_000  # results the simulated rejector keeps; found by the soak: all of them grew RSS


@dataclass(frozen=True, slots=True)
class RunLimits:
    frames: int | None = None
    duration_s: float | None = None


def run_station(config: StationConfig, limits: RunLimits, progress: bool = True, latency_png: Path | None = None) -> dict:
    check_outputs_apart(config, latency_png)
    check_archive_before_run(config.archive.path)
    if config.gate.thread_priority == "realtime":
        check_realtime_allowed()
    bundle = _load_bundle_for_station(config)
    chosen = open_station_backend(config, bundle)
    backend, raw_fps, backend_choice = chosen.backend, chosen.raw_fps, chosen.choice
    output: ResultOutput | None = None
    archive: ArchiveWriter | None = None
    ledger: SequenceLedger | None = None
    recovered: tuple[str, list[int]] = ("", [])
    preparers: PreparerProcesses | None = None
    shared_frames: SharedFrames | None = None
    source: FrameSource | None = None
    try:
        if config.batching.prepare_processes:
            # The source builds its frames where the preparer processes read them, with no copy between.
            shared_frames = SharedFrames()
            # Before the camera starts grabbing: starting them takes about a second.
            preparers = PreparerProcesses(bundle.meta.input, config.batching.prepare_processes, shared_frames,
                                          held_by_station=prepared_images_held_at_most(
                                              config.batching.queue_size, chosen.inference_workers, config.batching.max_batch))
        source = build_source(config, limits.frames, progress, shared_frames)
        source.open()
        output = build_output(config)
        output.open()
        output.set_ready(True)
        if config.archive.path is not None:
            archive = ArchiveWriter(config.archive.path, max_queue=config.archive.max_queue,
                                    group_commit_s=config.archive.group_commit_ms / 1000.0,
                                    png_compression=config.archive.png_compression)
            archive.start()
            # Before numbering resumes: items the last run issued but never archived get their fault record.
            recovered = recover_in_flight(config.archive.path, config.station.id)
        first_sequence = _next_sequence(config)
        if config.archive.path is not None:
            ledger = SequenceLedger(ledger_path(config.archive.path, config.station.id), config.station.lot,
                                    config.station.id, config.station.operator, bundle.bundle_hash,
                                    bundle.meta.policy.version, first_sequence)
            ledger.open()
        settings = PipelineSettings(
            station_id=config.station.id,
            lot=config.station.lot,
            operator=config.station.operator,
            max_batch=config.batching.max_batch,
            max_wait_ms=config.batching.max_wait_ms,
            queue_size=config.batching.queue_size,
            pass_sample_every=config.archive.pass_sample_every,
            stop_line_on_archive_failure=config.archive.on_failure == "stop_line",
            first_sequence=first_sequence,
            prepare_threads=config.batching.prepare_threads,
            inference_workers=chosen.inference_workers,
            # Half the transport delay: the other half is room for a slow spell before an item is late.
            read_ahead_wait_s=config.gate.transport_delay_ms / 2000.0,
        )
        gate_output = output

        def gate_factory(on_outcome):
            return RejectGate(gate_output, config.gate.transport_delay_ms, config.gate.window_ms, on_outcome=on_outcome,
                              realtime=config.gate.thread_priority == "realtime")

        pipeline = StationPipeline(bundle, backend, source, gate_factory, archive, settings,
                                   alarm_output=lambda reason: gate_output.set_alarm(True, reason), ledger=ledger,
                                   preparer_processes=preparers)
        if archive is not None:
            archive.on_failure = pipeline.archive_failed  # stop the line at once, not at the next item
        metrics_server = serve_metrics(pipeline, config.metrics.host, config.metrics.port) if config.metrics.enabled else None
        heartbeat = _Heartbeat(output, getattr(config.output, "heartbeat_interval_s", 0.5), pipeline, ledger)
        heartbeat.start()
        try:
            with _StatusLine(pipeline, progress), startup_objects_frozen():
                elapsed_s = pipeline.run(limits.duration_s)
        except Exception:
            # The run ends in error (e.g. no room in /dev/shm), but what the line decided is recorded:
            # records held back for a full archive queue are offered to it before it is closed below.
            if archive is not None:
                pipeline.flush_backlog()
            raise
        finally:
            heartbeat.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
        source.close()
        unarchived: list[int] = []
        released_unarchived: list[int] = []
        archive_failure = None
        archive_drain_s = 0.0
        if archive is not None:
            drain_started = time.monotonic()
            pipeline.flush_backlog()
            try:
                # Everything queued was accepted from the line: wait for all of it (about 20 large PNGs/s).
                archive.close(timeout_s=max(30.0, archive.queue_depth * 0.2))
            except ArchiveError as exc:
                # The line is already stopped; report every item without a record rather than only raising,
                # and leave their numbers to the next start's recovery (sequence ledger).
                archive_failure = str(exc)
            if archive_failure is None and archive.failure is not None:  # e.g. chain_head unwritable after a commit
                archive_failure = str(archive.failure)
            records = [*archive.unarchived(), *pipeline.backlog]
            unarchived = sorted(r.sequence for r in records)
            released_unarchived = sorted(r.sequence for r in records if r.verdict == Verdict.PASS.value)
            archive_drain_s = time.monotonic() - drain_started
        audit = verify_archive(config.archive.path) if config.archive.path is not None else None
        summary = summarise(pipeline, bundle, backend, raw_fps, elapsed_s, archive, len(unarchived), audit)
        if archive_failure is not None:
            summary["archive_failure"] = archive_failure
            summary["unarchived_sequences"] = unarchived
            # Passed at the gate before the failure was known: product out without its record.
            summary["unarchived_passed_sequences"] = released_unarchived
        summary["archive_queue_at_last_decision"] = pipeline.archive_queue_at_last_decision
        summary["archive_drain_s"] = archive_drain_s
        summary["backend_choice"] = backend_choice
        summary["inference_workers"] = chosen.inference_workers
        summary["preparation"] = ({"processes": config.batching.prepare_processes,
                                   "frames_read_in_place": preparers.frames_read_in_place,
                                   "frames_copied": preparers.frames_copied,
                                   "worker_answers": preparers.answers,
                                   "shared_frame_buffers": shared_frames.buffers}
                                  if preparers is not None else {"threads": config.batching.prepare_threads})
        summary["gate_thread_priority"] = config.gate.thread_priority
        geometry = frame_size_warning(pipeline.first_frame_wh, bundle.meta.dataset.get("train_frame_sizes"), str(bundle.path))
        summary["warnings"] = [geometry] if geometry else []
        summary["recovered_in_flight"] = {"lot": recovered[0], "sequences": recovered[1]}
        if latency_png is not None:
            try:
                summary["latency_png"] = str(write_latency_histogram(pipeline.tally.latencies_ms, latency_png, config.station.id))
            except OSError as exc:  # the run is done and its summary matters more than the plot
                Path(latency_png).unlink(missing_ok=True)
                summary["warnings"].append(f"latency histogram {latency_png} not written: {exc.strerror or exc}")
        return summary
    finally:
        if source is not None:
            source.close()  # again after a normal run (safe); after a failed one, a camera stops grabbing
        if preparers is not None:
            preparers.close()  # the pipeline has closed them unless the run failed before it started
        if shared_frames is not None:
            shared_frames.close()
        if archive is not None:
            # A failure after the writer started must not leave it running: it archives what is queued.
            # (A second close after the normal one returns at once; its error is already in the summary.)
            try:
                archive.close(timeout_s=30.0)
            except ArchiveError:
                pass  # the run's own error is the one to report; the next start recovers unarchived items
        if ledger is not None:
            ledger.close()
        if output is not None:
            if output.connected:
                output.set_ready(False)
            output.close()
        backend.close()


def _next_sequence(config: StationConfig) -> int:
    """Sequence numbers never repeat within a lot and station, across restarts."""
    if config.archive.path is None or not (config.archive.path / INDEX_NAME).exists():
        return 1
    with Archive.open(config.archive.path, create=False) as archive:
        last = archive.last_sequence(config.station.lot, config.station.id)
    return 1 if last is None else last + 1


def check_outputs_apart(config: StationConfig, latency_png: Path | None) -> None:
    """Nothing the station writes may replace a file, land in its bundle (its seal breaks) or in the
    folder it replays (the next replay would read the archive's images as items)."""
    if latency_png is not None:
        if Path(latency_png).suffix.lower() != ".png":
            raise ConfigError(f"--latency-png {latency_png} does not end in .png. Pass a PNG file path.")
        if Path(latency_png).exists():
            raise OutputExistsError(f"--latency-png {latency_png} already exists. Choose a new file name.")
    outputs = [(path, what) for path, what in ((config.archive.path, "the archive"), (latency_png, "--latency-png"))
               if path is not None]
    for path, what in outputs:
        ensure_not_in_bundle(path, what)
        if isinstance(config.source, FolderSourceSettings) and Path(path).resolve().is_relative_to(config.source.path.resolve()):
            raise ConfigError(f"{what} {path} lies inside the replayed folder {config.source.path}: its files would be "
                              "replayed as items. Choose a path outside it.")


def check_archive_before_run(path: Path | None) -> None:
    """Refuse to start on an archive that fails its audit check (new records would bury the damage)
    or on a folder that holds something else (a dataset, say), which the archive would pollute."""
    if path is None:
        return
    path = Path(path)
    if not (path / INDEX_NAME).is_file():
        # A fresh volume's lost+found, or a hidden .gitkeep, does not make a folder someone else's.
        foreign = [p for p in path.iterdir() if p.name != "lost+found" and not p.name.startswith(".")] if path.is_dir() else []
        if foreign:
            raise ArchiveError(f"archive folder {path} holds {foreign[0].name} but no {INDEX_NAME}: it is not an archive. "
                               "Give the station a new or empty folder for its archive.")
        return
    # The chain and its head, not the images: an append cannot hide a damaged image (its record keeps
    # the hash, and the end-of-run check reports it), and hashing every image would make each start
    # as slow as the archive is large.
    audit = verify_archive(path, check_images=False)
    if not audit.ok:
        raise ArchiveError(f"archive {path} fails its audit check before this run: {audit.first_bad}. Do not append to it: "
                           f"keep it as evidence (`inspection audit verify {path}`) and give the station a new archive folder.")


def _load_bundle_for_station(config: StationConfig) -> Bundle:
    try:
        return load_bundle(config.bundle)
    except BundleIntegrityError as exc:
        # At the station a tampered bundle is a refusal to start (bad input), not a verify verdict.
        raise BundleError(f"station refuses to start: {exc}") from None


@dataclass(frozen=True, slots=True)
class StationBackend:
    backend: Backend
    raw_fps: float  # the backend alone, at the station's batch size, with its inference workers
    choice: dict  # what was asked for and what each candidate measured
    inference_workers: int


def open_station_backend(config: StationConfig, bundle: Bundle) -> StationBackend:
    """Open the configured backend and precision, or with `auto` every available one, keeping the
    fastest measured here: `auto` never picks a slower precision, and never an int8 model whose
    parity gate was overridden. Each is measured as the station will run it: at its batch size, by
    its inference workers side by side."""
    settings, batch = config.backend, config.batching.max_batch
    candidates = station_backend_candidates(settings.kind, settings.precision, settings.device, bundle)
    choosing = len(candidates) > 1 or "auto" in (settings.kind, settings.precision)
    measured: dict[str, float] = {}
    best: tuple[Backend, float, int] | None = None  # backend, raw fps, inference workers
    for kind, precision in candidates:
        workers = inference_workers_for(config, kind)
        try:
            # Fixed-batch runtimes size their buffers; ONNX Runtime's threads share the cores with capture.
            options = {"spin_wait": settings.spin_wait} if kind == BackendKind.ONNXRUNTIME else {"max_batch": batch}
            backend = open_backend(kind, bundle, device=settings.device, threads=model_threads_for(config, workers),
                                   precision=precision, **options)
        except (BackendError, BackendUnavailableError):
            if not choosing:
                raise
            continue  # auto compares what is available here; an explicit choice must open
        fps = measure_raw_fps(backend, bundle, batch, streams=workers)
        measured[f"{kind}/{precision}"] = fps
        if best is None or fps > best[1]:
            if best is not None:
                best[0].close()
            best = (backend, fps, workers)
        else:
            backend.close()
    if best is None:
        raise BackendUnavailableError(f"no backend could run {bundle.path} on {settings.device}. Check the backend settings.")
    choice = {"requested": f"{settings.kind}/{settings.precision}", "raw_fps_by_backend": measured}
    return StationBackend(best[0], best[1], choice, best[2])


def inference_workers_for(config: StationConfig, kind: str) -> int:
    """The configured number, or by default 2 for ONNX Runtime on a CPU (its sessions run batches
    side by side) and 1 for torch and TensorRT."""
    if config.batching.inference_workers is not None:
        return config.batching.inference_workers
    return CPU_INFERENCE_WORKERS if kind == BackendKind.ONNXRUNTIME and config.backend.device == "cpu" else 1


def model_threads_for(config: StationConfig, workers: int) -> int | None:
    """The configured model threads, or with several workers (ONNX Runtime only, see
    inference_workers_for) an equal share of the cores each (more would only queue behind one
    another); None leaves the runtime its own default."""
    if config.backend.threads is not None or workers == 1:
        return config.backend.threads
    return max(1, len(os.sched_getaffinity(0)) // workers)


def station_backend_candidates(kind: str, precision: str, device: str, bundle: Bundle) -> list[tuple[str, str]]:
    """(backend, precision) pairs to try: the one asked for, or for `auto` every one this device and bundle offer."""
    kinds = [kind] if kind != "auto" else [k.value for k in BackendKind]
    if precision != "auto":
        return [(k, precision) for k in kinds]
    offered = {
        BackendKind.ONNXRUNTIME: ["fp32"] + (["int8"] if bundle.meta.int8 is not None and not bundle.meta.int8.parity_overridden else []),
        BackendKind.TORCH: ["fp32", "fp16"] if device == "cuda" else ["fp32"],
        BackendKind.TENSORRT: sorted({e.precision for e in bundle.meta.engines if not _overridden(bundle, e.precision)}),
    }
    return [(k, p) for k in kinds for p in offered[BackendKind(k)]]


def _overridden(bundle: Bundle, precision: str) -> bool:
    return bool(bundle.meta.parity.get(f"tensorrt_{precision}", {}).get("overridden", False))


def measure_raw_fps(backend: Backend, bundle: Bundle, batch_size: int, seconds: float = RAW_FPS_SECONDS,
                    streams: int = 1) -> float:
    """The backend alone on already-prepared frames at the station's batch size, from `streams` threads
    at once (the station's inference workers): the ceiling."""
    spec = bundle.meta.input
    frame = np.random.default_rng(0).integers(0, 256, (spec.size_px, spec.size_px, 3), dtype=np.uint8)
    batch = to_model_input(np.stack([prepare(frame, spec)] * batch_size), spec)
    backend.infer(batch)  # warm-up
    images = [0] * streams
    started = time.perf_counter()

    def infer_until_time_is_up(stream: int) -> None:
        while time.perf_counter() - started < seconds:
            backend.infer(batch)
            images[stream] += batch_size

    threads = [threading.Thread(target=infer_until_time_is_up, args=(n,), name=f"raw-{n + 1}") for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(images) / (time.perf_counter() - started)


def build_source(config: StationConfig, frames: int | None, progress: bool,
                 shared_frames: SharedFrames | None = None) -> FrameSource:
    """`shared_frames`: where a source that can builds its frames, for preparer processes to read in place
    (the video source's frames are copied to them instead)."""
    settings = config.source
    if isinstance(settings, SyntheticSourceSettings):
        from station.sources.synthetic_line import SyntheticLineSource

        return SyntheticLineSource(settings.rate_hz, settings.defect_rate, settings.pool_size, settings.width_px,
                                   settings.height_px, settings.seed, frames, progress, settings.product, shared_frames)
    if isinstance(settings, FolderSourceSettings):
        from station.sources.replay import FolderReplaySource

        return FolderReplaySource(settings.path, settings.rate_hz, frames, settings.loop, shared_frames)
    if isinstance(settings, OpenCvSourceSettings):
        from station.sources.replay import VideoCaptureSource

        target: str | int = int(settings.target) if settings.target.isdigit() else settings.target
        return VideoCaptureSource(target, settings.rate_hz, frames)
    if isinstance(settings, PylonSourceSettings):
        from station.sources.pylon_camera import PylonCameraSource

        return PylonCameraSource(settings, frames, shared_frames)
    raise AssertionError(f"unhandled source {settings!r}")


def build_output(config: StationConfig) -> ResultOutput:
    settings = config.output
    if isinstance(settings, ModbusOutputSettings):
        return ModbusPlcOutput(settings.host, settings.port, unit_id=settings.unit_id, base_address=settings.base_address,
                               timeout_s=settings.timeout_s,
                               lot=config.station.lot, recipe=config.station.recipe)
    return SimulatedRejector(history=SIMULATED_OUTPUT_HISTORY)


class _Heartbeat:
    """Tells the PLC the station is alive; if the station dies, the counter stops and the PLC stops the line."""

    def __init__(self, output: ResultOutput, interval_s: float, pipeline: StationPipeline,
                 ledger: SequenceLedger | None) -> None:
        self._output, self._interval_s, self._pipeline, self._ledger = output, interval_s, pipeline, ledger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._output.heartbeat()
            except Exception as exc:  # the gate's reconnect loop restores the link; here we only alarm
                self._pipeline.raise_alarm(f"plc_communication: heartbeat failed: {exc}")
            if self._ledger is not None:
                try:
                    self._ledger.sync()  # bounds what a power cut can hide to one heartbeat period
                except OSError as exc:
                    self._pipeline.archive_failed(exc)


class _StatusLine:
    """A live one-line status on stderr while the station runs."""

    def __init__(self, pipeline: StationPipeline, enabled: bool) -> None:
        # Off a terminal a transient line draws nothing and leaves an empty line behind (inspection.console).
        self._pipeline, self._enabled = pipeline, enabled and stderr_console.is_terminal
        self._stop = threading.Event()
        self._live: Live | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "_StatusLine":
        if self._enabled:
            self._live = Live(self._text(), console=stderr_console, refresh_per_second=4, transient=True)
            self._live.start()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.stop()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._live.update(self._text())

    def _text(self) -> str:
        t = self._pipeline.tally
        v = t.verdicts
        return (f"frames {t.frames}  pass {v['pass']}  reject {v['reject']}  uncertain {v['uncertain']}  "
                f"fault {v['fault']}  late {t.late}  alarms {t.alarms_total}")


def summarise(pipeline: StationPipeline, bundle: Bundle, backend: Backend, raw_fps: float, elapsed_s: float,
              archive: ArchiveWriter | None, unarchived: int, audit) -> dict:
    t = pipeline.tally
    v = t.verdicts
    gate = pipeline.gate.counts()
    summary = {
        "frames": t.frames,
        "passed": v["pass"],
        "rejected": v["reject"],
        "uncertain": v["uncertain"],
        "fault": v["fault"],
        "late": t.late,
        "balanced": t.frames == v["pass"] + v["reject"] + v["uncertain"] + v["fault"],
        "archived": archive.archived_count if archive is not None else 0,
        "unarchived": unarchived,
        "throughput_fps": t.frames / elapsed_s if elapsed_s > 0 else 0.0,
        "latency_ms": t.latencies_ms.summary(),
        "stage_ms": {name: timings.summary() for name, timings in t.stage_ms.items()},
        "mean_batch_size": t.batch_sizes.mean() or 0.0,
        "overruns": t.overruns,
        "corrupt_frames": t.corrupt_frames,
        "missed_by_source": t.missed_by_source,
        "alarms": t.alarms,
        "alarms_total": t.alarms_total,
        "gate": {"published": gate.published, "publish_failures": gate.publish_failures, "missed_gate": gate.missed_gate,
                 "timed_out": gate.timed_out, "signal_lateness_ms": t.gate_lateness_ms.summary()},
        "backend": backend.description,
        "backend_raw_fps": raw_fps,
        "bundle_hash": bundle.bundle_hash,
        "elapsed_s": elapsed_s,
        "audit_verified": audit.ok if audit is not None else None,
    }
    summary["throughput_vs_raw"] = summary["throughput_fps"] / raw_fps if raw_fps else None
    if t.frames_with_truth:
        summary["escapes"] = t.escapes
        summary["false_rejects"] = t.false_rejects
    if audit is not None and not audit.ok:
        summary["audit_first_bad"] = audit.first_bad
    return summary
