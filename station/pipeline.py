"""The station's hot path: capture -> prepare -> micro-batch -> infer -> decide -> gate -> archive.

Threads and their bounded hand-overs:
    capture thread    reads the source, gives each item its sequence number (noted in the sequence
                      ledger first, so a crash cannot hide it), tracks it at the gate, prepares it
                      once (resize/colour), queues it for inference; a full queue is an overrun:
                      that item is a fault (rejected) and the alarm goes up, never a drop.
                      With `prepare_threads` > 1 a thread pool prepares and queues instead; with
                      preparer processes (station.prepare_processes), they prepare and one
                      collector thread queues what they answer.
    inference threads gather up to max_batch items (waiting at most max_wait_ms; InferenceQueue wakes
                      a gathering thread once its batch is full, not for every item), run the backend,
                      decide each item and resolve it at the gate. No I/O here. With several
                      (`inference_workers`), one batch's inference overlaps the next one's gathering
                      and the last one's decisions; a partial batch waits while another is inferred.
    gate thread       (RejectGate) publishes each result when its item is at the gate, then calls
                      `_on_gate_event`, which counts the final outcome and submits the item's audit
                      record (every item; the image for exceptions and sampled passes) to the writer.
    archive thread    (ArchiveWriter) encodes PNGs and appends hash-chained records.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from inspection.backends import Backend
from inspection.bundle import Bundle
from inspection.decision import Decision, Verdict, decide_batch, fault
from inspection.errors import CorruptImageError
from inspection.input_spec import InputLayout
from inspection.preprocess import prepare, to_model_input
from station.archive import ArchiveWriter, ItemRecord
from station.archive.errors import ArchiveError
from station.archive.records import utc_now_iso
from station.inference_queue import InferenceQueue
from station.outcomes import final_outcome
from station.prepare_processes import CORRUPT_FRAME, PreparedImage, PreparerFailed, PreparerProcesses
from station.read_ahead import ReadAheadLimit
from station.shared_frames import NO_ROOM_FOR_FRAME, SharedMemoryFull
from station.signalling import GateEvent, ItemResult, Outcome, RejectGate
from station.sources import Frame, FrameSource, SourceExhausted
from station.timing_histogram import TimingHistogram

LISTED_ALARMS_PER_KIND = 20
UNUSABLE_FRAME_ALARM = "camera: unusable frames (lost, corrupt or incomplete); those items are faults, see their records"


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    station_id: str
    lot: str
    operator: str
    # Unpaced replay: the longest an item read ahead should wait for its decision (see ReadAheadLimit);
    # the runner sets half the gate's transport delay.
    read_ahead_wait_s: float
    max_batch: int = 8
    max_wait_ms: float = 2.0
    queue_size: int = 64
    pass_sample_every: int = 100
    stop_line_on_archive_failure: bool = True
    first_sequence: int = 1  # continues the archive's numbering for this lot and station
    prepare_threads: int = 1  # 1: the capture thread prepares each frame itself
    inference_workers: int = 1  # threads that each gather a batch and run the backend (which must allow it)


@dataclass(slots=True)
class _InFlight:
    frame: Frame
    prepared: np.ndarray | None = None
    lent: PreparedImage | None = None  # where `prepared` lies when a preparer process lent it
    decision: Decision | None = None
    probabilities: np.ndarray | None = None
    decided_utc: str | None = None


@dataclass
class PipelineTally:
    frames: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    late: int = 0
    overruns: int = 0
    corrupt_frames: int = 0
    missed_by_source: int = 0  # items the camera never delivered (reported, cannot be inspected)
    archived_submitted: int = 0
    frames_with_truth: int = 0
    escapes: int = 0
    false_rejects: int = 0
    alarms: list[str] = field(default_factory=list)  # the first LISTED_ALARMS_PER_KIND of each kind, in order
    alarms_total: int = 0
    latencies_ms: TimingHistogram = field(default_factory=TimingHistogram)
    stage_ms: dict[str, TimingHistogram] = field(default_factory=lambda: {"prepare": TimingHistogram(), "infer_per_item": TimingHistogram()})
    batch_sizes: TimingHistogram = field(default_factory=TimingHistogram)
    # Items decided in time: how long after the deadline the gate's thread signalled (past the window: missed_gate).
    gate_lateness_ms: TimingHistogram = field(default_factory=TimingHistogram)


class StationPipeline:
    def __init__(
        self,
        bundle: Bundle,
        backend: Backend,
        source: FrameSource,
        gate_factory,  # (on_outcome) -> RejectGate; the gate calls back into this pipeline
        archive: ArchiveWriter | None,
        settings: PipelineSettings,
        alarm_output: Callable[[str], None] | None = None,  # raises the line's alarm (PLC line stop)
        ledger=None,  # SequenceLedger: notes each issued number, so a crash cannot lose an item in flight
        # Started before the camera (they take a second to start); closed here when capture ends, so that
        # their last results are queued before inference stops.
        preparer_processes: PreparerProcesses | None = None,
    ) -> None:
        self._preparer_processes = preparer_processes
        self._alarm_output = alarm_output
        self._ledger = ledger
        self._bundle, self._backend, self._source, self._archive, self._settings = bundle, backend, source, archive, settings
        self._spec, self._policy = bundle.meta.input, bundle.meta.policy
        self._good = set(bundle.meta.good_classes)
        self._queue = InferenceQueue(settings.queue_size)
        # Unpaced replay reads the next item only while fewer items are undecided than ReadAheadLimit
        # allows: enough to keep every inference worker busy, few enough to be decided in time.
        self._read_ahead = (None if source.paced
                            else ReadAheadLimit(settings.max_batch, settings.inference_workers, settings.read_ahead_wait_s))
        self._items_read = self._items_decided = 0
        self._decided_changed = threading.Condition()
        self._in_flight: dict[int, _InFlight] = {}
        self._lock = threading.Lock()
        self._alarms_lock = threading.Lock()
        self._last_alarm: str | None = None
        self._alarms_per_kind: Counter[str] = Counter()
        self._stop = threading.Event()
        self._inferring = 0  # batches in the backend now, over all inference workers
        self._inferring_lock = threading.Lock()
        self._completed = threading.Condition(self._lock)
        self._finished = 0
        self._passes_seen = 0
        self._source_alarms_seen = 0
        self._frame_shape: tuple[int, ...] | None = None  # of the first usable frame
        self.tally = PipelineTally()
        if preparer_processes is not None:
            self.tally.stage_ms["handover"] = TimingHistogram()
        self.backlog: list[ItemRecord] = []
        self.gate: RejectGate = gate_factory(self._on_gate_event)
        self.archive_queue_at_last_decision = 0
        self.gate.on_alarm = self._record_alarm  # the gate has already raised it on the output

    # ------------------------------------------------------------------ control

    def queue_depths(self) -> dict[str, int]:
        depths = {"inference": self._queue.qsize(), "gate_pending": self.gate.pending}
        if self._archive is not None:
            depths["archive"] = self._archive.queue_depth
        return depths

    def stop(self, reason: str | None = None) -> None:
        if reason:
            self.raise_alarm(reason)
        self._stop.set()

    def run(self, duration_s: float | None = None) -> float:
        """Run until the source is exhausted, `duration_s` passes or stop(); returns elapsed seconds."""
        workers = [threading.Thread(target=self._inference_loop, name=f"inference-{n + 1}", daemon=True)
                   for n in range(self._settings.inference_workers)]
        for worker in workers:
            worker.start()
        started = time.monotonic()
        try:
            self._capture_loop(None if duration_s is None else started + duration_s)
        finally:
            self._queue.close()  # the workers decide what is queued, then end
            for worker in workers:
                worker.join()
            # Throughput counts up to the last decision, not the gate's drain of the transport delay.
            elapsed_s = time.monotonic() - started
            # Records still queued then: a writer that fell behind would hide its cost from that figure.
            self.archive_queue_at_last_decision = self._archive.queue_depth if self._archive is not None else 0
            self.gate.close(drain=True)
        with self._completed:
            self._completed.wait_for(lambda: self._finished >= self.tally.frames, timeout=30.0)
        return elapsed_s

    # ------------------------------------------------------------------ capture thread (the caller's)

    def _capture_loop(self, deadline_s: float | None) -> None:
        workers = self._settings.prepare_threads
        # With more than one, preparation (the resize, the costliest per-frame step) runs on a pool and
        # the capture thread only reads, numbers and tracks; at most 2 frames per worker wait for it.
        preparers = ThreadPoolExecutor(workers, thread_name_prefix="prepare") if workers > 1 else None
        slots = threading.BoundedSemaphore(2 * workers)
        processes = self._preparer_processes
        try:
            self._capture_frames(deadline_s, preparers, slots, processes)
        finally:
            if preparers is not None:
                preparers.shutdown(wait=True)
            if processes is not None:
                processes.close()

    def _capture_frames(self, deadline_s: float | None, preparers: ThreadPoolExecutor | None,
                        slots: threading.BoundedSemaphore, processes: PreparerProcesses | None) -> None:
        sequence = self._settings.first_sequence - 1
        while not self._stop.is_set() and (deadline_s is None or time.monotonic() < deadline_s):
            if not self._take_undecided_slot():
                return
            try:
                frame = self._source.read()
            except SourceExhausted:
                self._take_source_alarms()  # e.g. a video file that ended before the frames it announced
                if self._read_ahead is not None:
                    with self._decided_changed:
                        self._items_read -= 1
                return
            self._take_source_alarms()
            self._wait_for_archive_room()
            sequence += 1
            if self._ledger is not None:
                self._ledger.issue(sequence)
            item = _InFlight(frame)
            with self._lock:
                self._in_flight[sequence] = item
                self.tally.frames += 1
            self.gate.track(sequence, frame.trigger_time_s)
            if frame.image is None:
                if frame.error and frame.error.startswith(NO_ROOM_FOR_FRAME):
                    self._end_for_want_of_shared_memory(sequence, item, frame.error)
                # One alarm text, so a burst of bad frames alarms once.
                self._fault_unusable(sequence, item, f"no usable frame: {frame.error}")
                continue
            changed = self._resolution_change(frame.image.shape)
            if changed:
                self._fault_unusable(sequence, item, changed, f"camera: {changed}")
                continue
            if processes is not None:
                if not self._hand_to_process(processes, sequence, item):
                    return
            elif preparers is None:
                self._prepare_and_queue(sequence, item)
            elif slots.acquire(blocking=not self._source.paced):
                preparers.submit(self._prepare_in_worker, sequence, item, slots)
            else:
                self._overrun(sequence, item)

    def _take_undecided_slot(self) -> bool:
        """Unpaced replay: wait until the read-ahead limit allows one more undecided item (`_resolve`
        decides one); False when the run is stopped meanwhile."""
        if self._read_ahead is None:
            return True
        with self._decided_changed:
            while self._items_read - self._items_decided >= self._read_ahead.limit(self._items_decided, time.monotonic()):
                if self._stop.is_set():
                    return False
                self._decided_changed.wait(0.1)
            self._items_read += 1
        return True

    def _wait_for_archive_room(self) -> None:
        """Replay without a rate sets its own pace: it waits for a busy archive rather than outrunning it
        (a paced camera cannot wait; there a full archive queue stops the line, see `archive_failed`)."""
        if self._archive is None or self._source.paced:
            return
        # Every item between camera and gate will want a place in the archive queue too.
        while (self._archive.queue_depth + len(self._in_flight) >= self._archive.max_queue
               and not self._stop.is_set() and self._archive.failure is None):
            time.sleep(0.002)

    def _prepare_in_worker(self, sequence: int, item: _InFlight, slots: threading.BoundedSemaphore) -> None:
        try:
            self._prepare_and_queue(sequence, item)
        finally:
            slots.release()

    def _prepare_and_queue(self, sequence: int, item: _InFlight) -> None:
        started = time.perf_counter()
        try:
            item.prepared = prepare(item.frame.image, self._spec)
        except CorruptImageError as exc:
            self._fault_unusable(sequence, item, f"{CORRUPT_FRAME}: {exc}")
            return
        self.tally.stage_ms["prepare"].record((time.perf_counter() - started) * 1000)
        self._queue_prepared(sequence, item)

    def _hand_to_process(self, processes: PreparerProcesses, sequence: int, item: _InFlight) -> bool:
        """Give the frame to a preparer process (its result comes back on the processes' collector
        thread); False when a preparer died: the item is a fault and the line stops."""
        started = time.perf_counter()

        def prepared_elsewhere(prepared: PreparedImage | None, error: str | None, prepare_ms: float | None) -> None:
            if error is not None:
                if error.startswith(CORRUPT_FRAME):
                    self._fault_unusable(sequence, item, error)
                    return
                self._resolve(sequence, item, fault(error), None)
                if processes.failure is not None:  # its preparer died: no frame can be prepared now
                    self.stop(f"station: {processes.failure}; line stopped")
                return
            item.prepared, item.lent = prepared.array, prepared
            self.tally.stage_ms["prepare"].record(prepare_ms)  # in the worker: the same step as on a thread
            # From hand-over to result: the wait for a worker, the preparation and the hand-back.
            self.tally.stage_ms["handover"].record((time.perf_counter() - started) * 1000)
            self._queue_prepared(sequence, item)

        try:
            handed = processes.submit(item.frame.image, prepared_elsewhere, wait=not self._source.paced)
        except PreparerFailed as exc:
            if isinstance(exc.__cause__, SharedMemoryFull):  # no room for the frame's copy in a worker's slot
                self._end_for_want_of_shared_memory(sequence, item, str(exc))
            self._resolve(sequence, item, fault(str(exc)), None)
            self.stop(f"station: {exc}; line stopped")
            return False
        if not handed:
            self._overrun(sequence, item)
        return True

    def _fault_unusable(self, sequence: int, item: _InFlight, reason: str, alarm: str = UNUSABLE_FRAME_ALARM) -> None:
        with self._lock:  # the collector thread counts corrupt frames too
            self.tally.corrupt_frames += 1
        self.raise_alarm(alarm)
        self._resolve(sequence, item, fault(reason), None)

    def _end_for_want_of_shared_memory(self, sequence: int, item: _InFlight, reason: str) -> None:
        """A frame with no room in /dev/shm: the item passed the camera, so it is numbered, recorded and
        rejected; then the run ends with the fix, since every next frame would need room too."""
        self.raise_alarm(f"station: {reason}")  # not the camera's fault: the station's resources
        self._resolve(sequence, item, fault(f"no usable frame: {reason}"), None)
        raise SharedMemoryFull(reason)

    def _queue_prepared(self, sequence: int, item: _InFlight) -> None:
        # Replay without a rate: the station sets the pace, so wait for room instead of overrunning.
        if not self._queue.put((sequence, item), block=not self._source.paced):
            self._overrun(sequence, item)

    def _overrun(self, sequence: int, item: _InFlight) -> None:
        with self._lock:
            self.tally.overruns += 1
        self.raise_alarm("decision_timeout: overrun, frames arrive faster than the backend decides them")
        self._resolve(sequence, item, fault("overrun: inference queue full"), None)

    @property
    def first_frame_wh(self) -> tuple[int, int] | None:
        """Width and height of the first usable frame (compared with the training frames' after the run)."""
        return None if self._frame_shape is None else (self._frame_shape[1], self._frame_shape[0])

    def _resolution_change(self, shape: tuple[int, ...]) -> str | None:
        """A camera that suddenly delivers another size or colour was reconfigured or replaced: the model
        was not validated on what it now sees, so those items are faults (a folder replay may mix sizes)."""
        if self._frame_shape is None:
            self._frame_shape = shape
        if shape == self._frame_shape or not getattr(self._source, "fixed_resolution", False):
            return None
        return f"resolution changed: frame is {_describe(shape)} but the line delivered {_describe(self._frame_shape)}"

    def _take_source_alarms(self) -> None:
        """A camera reports items it missed (block-id gaps, a reconnect): alarm, and count them."""
        alarms = getattr(self._source, "alarms", ())
        for reason in alarms[self._source_alarms_seen :]:
            self.raise_alarm(f"camera: {reason}")
        self._source_alarms_seen = len(alarms)
        self.tally.missed_by_source = getattr(self._source, "missed_frames", 0)

    # ------------------------------------------------------------------ inference thread

    def _inference_loop(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._queue.take_batch(self._settings.max_batch, self._settings.max_wait_ms / 1000.0,
                                                     lambda: self._inferring > 0)
            if not batch:
                continue
            with self._inferring_lock:
                self._inferring += 1
            try:
                self._infer_batch(batch)
            finally:
                with self._inferring_lock:
                    self._inferring -= 1

    def _infer_batch(self, batch: list[tuple[int, _InFlight]]) -> None:
        sequences = [sequence for sequence, _ in batch]
        items = [item for _, item in batch]
        started = time.perf_counter()
        alarm = None
        try:
            probabilities = self._infer(items)
            if len(probabilities) != len(items):
                raise ValueError(f"backend returned {len(probabilities)} rows for {len(items)} frames")
        except Exception as exc:  # a backend failure must fault the items, never pass them
            decisions = [fault(f"inference failed: {type(exc).__name__}: {exc}")] * len(items)
            probabilities, alarm = [None] * len(items), f"model: inference failed: {exc}"
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.tally.stage_ms["infer_per_item"].record(elapsed_ms / len(items))
            self.tally.batch_sizes.record(len(items))
            decisions = decide_batch(probabilities, self._policy)
        self._record_decisions(sequences, items, decisions, probabilities)
        # Once for the batch: a capture thread waiting for the read-ahead limit wakes once, not per item.
        self._note_decided(len(items))
        if alarm is not None:
            self.raise_alarm(alarm)

    def _infer(self, items: list[_InFlight]) -> np.ndarray:
        """The batch's probabilities. Every item lets go of its prepared image once the backend has it (a
        lent one goes back to its preparer's pool for the next frame)."""
        try:
            images = [item.prepared for item in items]
            if self._spec.layout == InputLayout.NHWC_UINT8:
                # As they lie: a GPU backend copies them straight into its pinned memory, not stacked first.
                return self._backend.infer_images(images)
            return self._backend.infer(to_model_input(np.stack(images), self._spec))
        finally:
            for item in items:
                _let_go_of_prepared(item)

    def _resolve(self, sequence: int, item: _InFlight, decision: Decision, probabilities: np.ndarray | None) -> None:
        """One item's decision (a fault, mostly: it never reached a batch)."""
        _let_go_of_prepared(item)  # an item faulted before its batch was inferred still holds it
        self._record_decisions([sequence], [item], [decision], [probabilities])
        self._note_decided(1)

    def _record_decisions(self, sequences: list[int], items: list[_InFlight], decisions: list[Decision],
                          probabilities: Sequence[np.ndarray | None]) -> None:
        """Decisions made at one moment (a batch's): one timestamp, and one lock each for the latency
        histogram and the gate. Each item holds its decision before the gate has its result."""
        decided_utc, now = utc_now_iso(), time.monotonic()
        for item, decision, row in zip(items, decisions, probabilities):
            item.decision, item.probabilities, item.decided_utc = decision, row, decided_utc
        self.tally.latencies_ms.record_many([(now - item.frame.trigger_time_s) * 1000 for item in items])
        names = self._policy.class_names
        self.gate.resolve_many([ItemResult.from_decision(sequence, decision, names)
                                for sequence, decision in zip(sequences, decisions)])

    def _note_decided(self, count: int) -> None:
        if self._read_ahead is not None:
            with self._decided_changed:
                self._items_decided += count
                self._decided_changed.notify()

    # ------------------------------------------------------------------ gate thread

    def _on_gate_event(self, event: GateEvent) -> None:
        with self._lock:
            item = self._in_flight.pop(event.sequence)
        outcome = final_outcome(item.decision, event)
        self.tally.verdicts[outcome.verdict.value] += 1
        if self.gate.position_in_seconds and event.outcome != Outcome.ABANDONED and not event.result.late:
            self.tally.gate_lateness_ms.record(max(0.0, event.lateness) * 1000.0)
        if outcome.late:
            self.tally.late += 1
        truth = item.frame.true_label
        if truth is not None:
            self.tally.frames_with_truth += 1
            is_good = truth in self._good
            self.tally.escapes += int(not is_good and outcome.verdict == Verdict.PASS)
            self.tally.false_rejects += int(is_good and outcome.verdict != Verdict.PASS)
        if self._archive is not None:
            # Every item leaves a record (the count must balance in the archive too, and a restart must
            # see which numbers were decided); only the image of a pass is sampled.
            self._submit(event, item, outcome, with_image=self._should_archive_image(outcome.verdict))
        with self._completed:
            self._finished += 1
            if self._finished >= self.tally.frames:  # only then can run()'s wait end (frames counts under this lock)
                self._completed.notify_all()

    def _should_archive_image(self, verdict: Verdict) -> bool:
        if verdict != Verdict.PASS:
            return True
        self._passes_seen += 1
        every = self._settings.pass_sample_every
        return bool(every) and self._passes_seen % every == 1 % every

    def _submit(self, event: GateEvent, item: _InFlight, outcome, with_image: bool) -> None:
        decision = item.decision
        scores = tuple(float(p) for p in item.probabilities) if item.probabilities is not None else ()
        record = ItemRecord(
            lot=self._settings.lot,
            station=self._settings.station_id,
            sequence=event.sequence,
            captured_utc=item.frame.captured_utc,
            decided_utc=item.decided_utc or utc_now_iso(),
            signalled_utc=utc_now_iso(),
            verdict=outcome.verdict.value,
            defect_class=decision.defect_class if decision else None,
            reason=outcome.reason,
            scores=scores,
            class_names=self._policy.class_names if scores else (),
            bundle_hash=self._bundle.bundle_hash,
            thresholds_version=self._policy.version,
            operator=self._settings.operator,
            late=outcome.late,
            true_label=item.frame.true_label,
            image=item.frame.image if with_image else None,
        )
        if self.backlog:
            # Records reach the archive in sequence order: once one waits, every later one waits behind it.
            self.backlog.append(record)
            return
        try:
            self._archive.submit(record)
            self.tally.archived_submitted += 1
        except ArchiveError as exc:
            # Never dropped: kept here and offered again when the run ends (see `flush_backlog`).
            self.backlog.append(record)
            self.archive_failed(exc)

    def archive_failed(self, exc: Exception) -> None:
        """The archive refused a record or its writer stopped: stop the line or alarm, per the config.

        A writer that stopped (a disk error, not a queue that is only full) will record no item of this
        run again, so from now on no item is released without its record: the gate rejects every pass
        it has not yet published, as a fault, whichever the policy."""
        if self._archive is not None and self._archive.failure is not None:
            self.gate.withhold_passes(f"the archive failed ({self._archive.failure})")
        if self._settings.stop_line_on_archive_failure:
            self.stop(f"archive: cannot keep up or failed ({exc}); line stopped")
        else:
            self.raise_alarm(f"archive: cannot keep up or failed ({exc})")

    def flush_backlog(self, timeout_s: float = 30.0) -> int:
        """Offer held-back records again, waiting for queue space; returns how many remain unarchived."""
        give_up = time.monotonic() + timeout_s
        while self.backlog and time.monotonic() < give_up:
            try:
                self._archive.submit(self.backlog[0])
            except ArchiveError:
                if self._archive.failure is not None:
                    break  # the archive itself failed (disk): waiting will not help
                time.sleep(0.01)
                continue
            self.backlog.pop(0)
            self.tally.archived_submitted += 1
        return len(self.backlog)

    def _record_alarm(self, reason: str) -> bool:
        """Add the alarm to the run's list unless it repeats the last one; True when added."""
        with self._alarms_lock:  # its own lock: the gate thread calling in never waits on _lock
            if self._last_alarm == reason:
                return False
            self._last_alarm = reason
            self.tally.alarms_total += 1
            # A long outage alarms for every item: list the first few of each kind, count them all.
            kind = reason.split(":", 1)[0]
            self._alarms_per_kind[kind] += 1
            if self._alarms_per_kind[kind] <= LISTED_ALARMS_PER_KIND:
                self.tally.alarms.append(reason)
            return True

    def raise_alarm(self, reason: str) -> None:
        """Record the alarm and raise the line's alarm output (line stop); repeated reasons once.

        The text before the first ":" picks the PLC's ALARM_REASON code (register_map.AlarmReason).
        """
        if not self._record_alarm(reason):
            return
        if self._alarm_output is not None:
            try:
                self._alarm_output(reason)
            except Exception:  # a lost PLC is handled by the gate's reconnect; the alarm is recorded above
                pass


def prepared_images_held_at_most(queue_size: int, inference_workers: int, max_batch: int) -> int:
    """Prepared images a pipeline holds at once, beyond its preparers' slots: its inference queue, a batch
    gathered by each inference worker, and one on its way into the full queue."""
    return queue_size + inference_workers * max_batch + 1


def _let_go_of_prepared(item: _InFlight) -> None:
    item.prepared = None  # the view first: a lent buffer is unmapped once released after close
    if item.lent is not None:
        lent, item.lent = item.lent, None
        lent.release()


def _describe(shape: tuple[int, ...]) -> str:
    channels = shape[2] if len(shape) == 3 else 1
    return f"{shape[1]}x{shape[0]} px, {channels} channel(s)"
