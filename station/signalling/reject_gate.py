"""Fire each item's result when the item is AT the reject gate: fail-safe, exactly once.

Each tracked item has one deadline, trigger + transport delay. One scheduler thread sleeps on a
Condition until the earliest deadline (a heap, no polling) and then publishes the decision, or, with
none yet, a late fault reject (`timed_out`): the item is at the jet and cannot wait. A decision that
came after the deadline but before the scheduler got there (a slow PLC) goes out as a late reject
(`late`); an item reached more than `gate_window` after its deadline has left the gate and is not
published (it would hit the next item): `missed_gate` and the alarm. Failed publishes count as
`publish_failures` and raise the alarm; a second thread reconnects the output in the background, so
the scheduler never waits for the PLC. The alarm holds until `clear_alarm()`.
Position is pluggable (a clock by default; an encoder via `RejectGate.on_position`). `realtime=True`
gives the scheduler thread SCHED_FIFO scheduling, so busy cores delay it less (thread_priority.py).
docs/plc_register_map.md ("Reject gate timing") has the full rules and the count identities.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Protocol

from inspection.errors import ConfigError
from station.signalling.errors import GateError, PlcConnectionLost
from station.signalling.output import ItemResult, ResultOutput
from station.signalling.thread_priority import make_realtime

log = logging.getLogger(__name__)

_FINISHED_MEMORY = 4096  # finished sequences remembered, to tell a late resolve() from a wrong one
_RECONNECT_PAUSE_S = 0.2  # between failed output.reconnect() calls


class PositionSource(Protocol):
    def now(self) -> float: ...  # current position (seconds for a clock, counts for an encoder)

    def seconds_until(self, position: float) -> float: ...  # how long to sleep before checking again


class ClockPosition:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def seconds_until(self, position: float) -> float:
        return position - self._clock()


class Resolution(StrEnum):
    SCHEDULED = "scheduled"  # in time: published when the item reaches the gate
    LATE = "late"  # after the deadline, still pending: published at once as a late reject
    ALREADY_SIGNALLED = "already_signalled"  # the item was already timed out (rejected) or missed


class Outcome(StrEnum):
    PUBLISHED = "published"
    PUBLISH_FAILED = "publish_failed"
    MISSED_GATE = "missed_gate"
    ABANDONED = "abandoned"  # close(drain=False) with the item still on its way


@dataclass(frozen=True, slots=True)
class GateEvent:
    """One per tracked item, to `on_outcome` (from the scheduler thread): for the audit trail."""

    sequence: int
    outcome: Outcome
    result: ItemResult  # as published (or as it would have been)
    deadline: float  # position the item was due at the gate
    signal_position: float  # position when the gate acted
    lateness: float  # signal_position - deadline, in position units
    withheld_reason: str | None = None  # set when a pass was published as a fault (see RejectGate.withhold_passes)


@dataclass(frozen=True, slots=True)
class GateCounts:
    tracked: int
    pending: int
    published: int
    passed: int
    rejected: int
    late: int
    timed_out: int
    missed_gate: int
    publish_failures: int
    abandoned: int

    @property
    def balanced(self) -> bool:
        done = self.published + self.publish_failures + self.missed_gate + self.abandoned
        return self.tracked == self.pending + done and self.published == self.passed + self.rejected


@dataclass(slots=True)
class _Item:
    deadline: float
    result: ItemResult | None = None
    resolved_late: bool = False


class RejectGate:
    def __init__(
        self,
        output: ResultOutput,
        transport_delay_ms: float,
        gate_window_ms: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_outcome: Callable[[GateEvent], None] | None = None,
        reconnect_max_wait_s: float = 1.0,
        realtime: bool = False,
    ) -> None:
        self._setup(output, ClockPosition(clock), transport_delay_ms / 1000.0, gate_window_ms / 1000.0,
                    on_outcome, reconnect_max_wait_s, realtime)

    @classmethod
    def on_position(
        cls,
        output: ResultOutput,
        source: PositionSource,
        transport_distance: float,
        gate_window: float,
        *,
        on_outcome: Callable[[GateEvent], None] | None = None,
        reconnect_max_wait_s: float = 1.0,
        realtime: bool = False,
    ) -> RejectGate:
        """A gate on any position source (an encoder); distances in the source's units."""
        gate = cls.__new__(cls)
        gate._setup(output, source, transport_distance, gate_window, on_outcome, reconnect_max_wait_s, realtime)
        return gate

    def _setup(self, output, source, transport, window, on_outcome, reconnect_max_wait_s, realtime) -> None:
        if transport < 0 or window < 0:
            raise ValueError(f"transport delay {transport} and gate window {window} must be >= 0")
        self._output, self._position, self._on_outcome = output, source, on_outcome
        # Lateness (GateEvent.lateness) is in seconds only on a clock; on an encoder it is in counts.
        self.position_in_seconds = isinstance(source, ClockPosition)
        self._transport, self._window, self._reconnect_max_wait_s = transport, window, reconnect_max_wait_s
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (deadline, track order, sequence)
        self._items: dict[int, _Item] = {}
        # The sequences the scheduler has taken (in flight or done), oldest first: a resolve() for one of
        # them is too late (ALREADY_SIGNALLED), a track() of one a duplicate.
        self._finished: OrderedDict[int, None] = OrderedDict()
        self._count = {f.name: 0 for f in fields(GateCounts) if f.name != "pending"}
        self._draining = self._stopping = self._closed = False
        self.alarm_active, self.alarm_reason = False, ""
        self._withhold_reason: str | None = None
        # Told every alarm the gate raises on its output, so the station's run summary lists it too.
        self.on_alarm: Callable[[str], None] | None = None
        self._reconnect_wanted = threading.Event()
        self._stop = threading.Event()
        self._scheduler_ended = False
        self._scheduler = threading.Thread(target=self._schedule, name="reject-gate", daemon=True)
        self._reconnector = threading.Thread(target=self._reconnect_loop, name="reject-gate-reconnect", daemon=True)
        self._scheduler.start()
        self._reconnector.start()
        if realtime:  # only the scheduler: it alone must act on time (see thread_priority.py)
            try:
                make_realtime(self._scheduler.native_id)
            except ConfigError:
                self.close(drain=False)
                raise

    # --- what the station calls ------------------------------------------------------------------

    def track(self, sequence: int, trigger_time_s: float) -> None:
        """Start following an item; `trigger_time_s` is its trigger's position (monotonic seconds by default)."""
        with self._cond:
            if self._closed or self._draining:
                raise GateError(f"item {sequence} tracked after the reject gate was closed; track before close()")
            if self._scheduler_ended:
                raise GateError("the reject gate's scheduler thread has died; restart the station")
            if sequence in self._items or sequence in self._finished:
                raise GateError(f"item {sequence} is already tracked; every item needs its own sequence number")
            deadline = trigger_time_s + self._transport
            self._items[sequence] = _Item(deadline)
            heapq.heappush(self._heap, (deadline, self._count["tracked"], sequence))
            self._count["tracked"] += 1
            if self._heap[0][2] == sequence:
                self._cond.notify()  # only a new earliest deadline changes how long the scheduler sleeps

    def resolve(self, sequence: int, result: ItemResult) -> Resolution:
        if result.sequence != sequence:
            raise GateError(f"resolve({sequence}) was given the result of item {result.sequence}")
        return self.resolve_many([result])[0]

    def resolve_many(self, results: Sequence[ItemResult]) -> list[Resolution]:
        """resolve() each result (its own sequence), in order: a batch's decisions, under one lock and one
        reading of the position (they were decided together). A GateError stops at the result that
        caused it; those before it are resolved, those after it time out at the gate (rejected)."""
        resolutions: list[Resolution] = []
        with self._cond:
            now = self._position.now()
            try:
                for result in results:
                    resolutions.append(self._resolve_locked(result, now))
            finally:
                if Resolution.LATE in resolutions:
                    self._cond.notify()
        return resolutions

    def _resolve_locked(self, result: ItemResult, now: float) -> Resolution:
        item = self._items.get(result.sequence)
        if item is None:
            if result.sequence in self._finished:
                return Resolution.ALREADY_SIGNALLED
            raise GateError(f"item {result.sequence} was never tracked; call track() at its trigger")
        if item.result is not None:
            raise GateError(f"item {result.sequence} was already resolved; each item gets one decision")
        item.result = result
        if now <= item.deadline:
            return Resolution.SCHEDULED
        item.resolved_late = True
        return Resolution.LATE

    def withhold_passes(self, reason: str) -> None:
        """From now on, every pass not yet published is published as a fault (rejected): the station
        can no longer stand behind a release, e.g. its audit record cannot be written. Irreversible for
        this gate: a restart, after the cause is fixed, releases product again."""
        with self._cond:
            if self._withhold_reason is None:
                self._withhold_reason = reason

    def clear_alarm(self) -> None:
        """The operator has dealt with the cause (e.g. taken out a missed item): release the line stop."""
        self.alarm_active, self.alarm_reason = False, ""
        try:
            self._output.set_alarm(False)
        except PlcConnectionLost:
            self._reconnect_wanted.set()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def counts(self) -> GateCounts:
        with self._cond:
            return GateCounts(**{**self._count, "pending": len(self._items)})

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        """drain: signal every pending item at its deadline (undecided ones time out), then stop.
        Otherwise stop now: pending items are counted `abandoned` and the alarm is raised, since they
        reach the gate without a signal."""
        with self._cond:
            if self._closed:
                return
            self._draining = True
            if not drain:
                self._stopping = True
            last = max((deadline for deadline, _, _ in self._heap), default=None)
            self._cond.notify()
        wait_s = timeout_s
        if wait_s is None and last is not None:
            wait_s = max(0.0, self._position.seconds_until(last + self._window)) + 2.0
        self._scheduler.join(wait_s)
        with self._cond:
            self._closed = self._stopping = True
            self._cond.notify()
            abandoned = sorted(self._items.items(), key=lambda kv: kv[1].deadline)
            self._items.clear()
            self._heap.clear()
            self._count["abandoned"] += len(abandoned)
        for sequence, item in abandoned:
            self._emit(sequence, Outcome.ABANDONED, item.result or ItemResult.timed_out(sequence), item.deadline)
        if abandoned:
            self._raise_alarm(f"shutdown: {len(abandoned)} items reached the gate without a signal")
        self._stop.set()
        self._reconnect_wanted.set()
        self._reconnector.join(self._reconnect_max_wait_s + 1.0)

    # --- the scheduler thread --------------------------------------------------------------------

    def _schedule(self) -> None:
        try:
            self._run()
        finally:  # a flag that track() reads for every item: Thread.is_alive() costs it 0.6 µs
            self._scheduler_ended = True

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._next_due()
                if due is None:
                    return
                sequence, item = due
                now = self._position.now()
                lateness = now - item.deadline
                if item.result is None:
                    result, kind = ItemResult.timed_out(sequence), "timed_out"
                elif item.resolved_late:
                    result, kind = item.result.as_late(), "late"
                else:
                    result, kind = item.result, ""
                withheld = self._withhold_reason if not result.reject else None
                if withheld is not None:
                    result = result.as_withheld()
            if lateness > self._window:
                self._finish(sequence, Outcome.MISSED_GATE, result, item.deadline, "missed_gate", withheld=withheld)
                self._raise_alarm(f"missed_gate: item {sequence} reached the gate {lateness:.4g} past its deadline")
                continue
            try:
                self._output.publish(result)
            # Any failure, not only PlcConnectionLost: if this thread died, signalling would stop silently.
            except Exception as exc:  # noqa: BLE001
                if not isinstance(exc, PlcConnectionLost):
                    log.exception("reject output failed on item %d", sequence)
                self._finish(sequence, Outcome.PUBLISH_FAILED, result, item.deadline, "publish_failures", kind, withheld=withheld)
                self._raise_alarm(f"plc_communication: item {sequence} not signalled: {exc}")
                self._reconnect_wanted.set()
                continue
            tally = "rejected" if result.reject else "passed"
            self._finish(sequence, Outcome.PUBLISHED, result, item.deadline, "published", tally, kind, withheld=withheld)
            if kind:  # rejected as it should be, but decisions are not keeping up with the line: stop it
                when = "had no decision by" if kind == "timed_out" else "was decided after"
                self._raise_alarm(f"decision_timeout: item {sequence} {when} its deadline")

    def _next_due(self) -> tuple[int, _Item] | None:
        """Under the lock: sleep until the earliest deadline and pop it; None when it is time to stop."""
        while True:
            if self._stopping:
                return None
            if not self._heap:
                if self._draining:
                    return None
                self._cond.wait()
                continue
            deadline, _, sequence = self._heap[0]
            wait_s = self._position.seconds_until(deadline)
            if wait_s <= 0:
                heapq.heappop(self._heap)
                self._finished[sequence] = None  # in flight: a resolve() from now on is too late
                if len(self._finished) > _FINISHED_MEMORY:
                    self._finished.popitem(last=False)
                return sequence, self._items.pop(sequence)
            self._cond.wait(wait_s)

    def _finish(self, sequence: int, outcome: Outcome, result: ItemResult, deadline: float, *tallies: str,
                withheld: str | None = None) -> None:
        with self._cond:
            for name in tallies:
                if name:
                    self._count[name] += 1
        self._emit(sequence, outcome, result, deadline, withheld)

    def _emit(self, sequence: int, outcome: Outcome, result: ItemResult, deadline: float, withheld: str | None = None) -> None:
        if self._on_outcome is None:
            return
        now = self._position.now()
        try:
            self._on_outcome(GateEvent(sequence, outcome, result, deadline, now, now - deadline, withheld))
        except Exception:  # noqa: BLE001 - a faulty observer must not stop the signalling
            log.exception("on_outcome callback failed for item %d", sequence)

    def _raise_alarm(self, reason: str) -> None:
        self.alarm_active, self.alarm_reason = True, reason
        if self.on_alarm is not None:
            try:
                self.on_alarm(reason)
            except Exception:  # noqa: BLE001 - a faulty observer must not stop the signalling
                log.exception("on_alarm callback failed")
        try:
            self._output.set_alarm(True, reason)
        except Exception:  # noqa: BLE001 - the output keeps the wanted alarm and re-writes it on reconnect
            self._reconnect_wanted.set()

    # --- the reconnect thread --------------------------------------------------------------------

    def _reconnect_loop(self) -> None:
        while True:
            self._reconnect_wanted.wait()
            if self._stop.is_set():
                return
            self._reconnect_wanted.clear()
            try:
                ok = self._output.reconnect(self._reconnect_max_wait_s)
            except Exception:  # noqa: BLE001 - keep trying; the alarm is already up
                log.exception("reconnect failed")
                ok = False
            if not ok:
                self._reconnect_wanted.set()
                self._stop.wait(_RECONNECT_PAUSE_S)
