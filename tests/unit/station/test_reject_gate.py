"""RejectGate with the SimulatedRejector and the real monotonic clock.

Timing bounds are generous (the machine is shared): the hard checks are "never before the deadline",
ordering, exactly one outcome per item, and balanced counts.
"""

from __future__ import annotations

import time

import pytest

from inspection.decision import Decision, Verdict, fault
from station.signalling import (
    GateError,
    GateEvent,
    ItemResult,
    Outcome,
    RejectGate,
    Resolution,
    SimulatedRejector,
)

pytestmark = pytest.mark.timeout(20)

SLACK_S = 0.030  # how late a publish may be on a busy 2-core machine; not a benchmark


def passed(sequence: int) -> ItemResult:
    return ItemResult(sequence, reject=False, verdict="pass", defect_class_code=0, late=False, error=False)


def rejected(sequence: int, code: int = 2) -> ItemResult:
    return ItemResult(sequence, reject=True, verdict="reject", defect_class_code=code, late=False, error=False)


def sleep_until(t_s: float) -> None:
    time.sleep(max(0.0, t_s - time.monotonic()))


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline_s, "condition not reached"
        time.sleep(0.005)


def make_gate(rejector: SimulatedRejector, delay_ms: float, window_ms: float = 200.0, **kw) -> RejectGate:
    rejector.open()
    return RejectGate(rejector, transport_delay_ms=delay_ms, gate_window_ms=window_ms, **kw)


def test_publishes_at_trigger_plus_delay_in_deadline_order_never_early() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=60)
    t0 = time.monotonic()
    # Tracked out of deadline order on purpose: item 3 triggered first.
    triggers = {1: t0 + 0.020, 2: t0 + 0.040, 3: t0}
    for sequence, trigger in triggers.items():
        gate.track(sequence, trigger)
        assert gate.resolve(sequence, passed(sequence) if sequence != 2 else rejected(2)) is Resolution.SCHEDULED
    assert rejector.published == []  # nothing before any deadline
    gate.close(drain=True)

    assert rejector.sequences == [3, 1, 2]
    for record in rejector.published:
        deadline = triggers[record.result.sequence] + 0.060
        assert record.time_s >= deadline, "published before the item reached the gate"
        assert record.time_s - deadline < SLACK_S
    assert [r.result.reject for r in rejector.published] == [False, False, True]
    counts = gate.counts()
    assert (counts.tracked, counts.published, counts.passed, counts.rejected, counts.pending) == (3, 3, 2, 1, 0)
    assert counts.balanced


def test_unresolved_item_is_rejected_as_late_fault_at_its_deadline_and_a_later_decision_is_not_sent() -> None:
    rejector = SimulatedRejector()
    events: list[GateEvent] = []
    gate = make_gate(rejector, delay_ms=40, on_outcome=events.append)
    trigger = time.monotonic()
    gate.track(7, trigger)
    wait_for(lambda: gate.counts().published == 1)

    assert len(rejector.published) == 1
    record = rejector.published[0]
    assert record.time_s >= trigger + 0.040
    assert record.result == ItemResult(7, reject=True, verdict="fault", defect_class_code=0, late=True, error=True)
    # The decision finally arrives: too late, the item has already been rejected; no second publish.
    assert gate.resolve(7, passed(7)) is Resolution.ALREADY_SIGNALLED
    gate.close()
    assert len(rejector.published) == 1
    counts = gate.counts()
    assert (counts.timed_out, counts.rejected, counts.passed, counts.late) == (1, 1, 0, 0)
    assert counts.balanced
    assert [(e.sequence, e.outcome) for e in events] == [(7, Outcome.PUBLISHED)]
    # Rejected as it should be, and the line is stopped: decisions are not keeping up.
    assert gate.alarm_active and gate.alarm_reason == "decision_timeout: item 7 had no decision by its deadline"


def test_decision_after_deadline_but_before_the_gate_got_to_it_is_a_late_reject() -> None:
    # A slow PLC holds the scheduler in item 1's publish; item 2's deadline passes meanwhile and its
    # decision (a pass!) comes in late but while the item is still inside the gate window.
    rejector = SimulatedRejector(publish_delay_s=0.300)
    gate = make_gate(rejector, delay_ms=50, window_ms=2000)
    t0 = time.monotonic()
    gate.track(1, t0)
    gate.track(2, t0)
    gate.resolve(1, rejected(1))
    sleep_until(t0 + 0.050 + 0.150)  # item 1's publish is blocking until about t0 + 0.35
    assert gate.resolve(2, passed(2)) is Resolution.LATE
    gate.close()

    assert rejector.sequences == [1, 2]
    late = rejector.published[1].result
    assert (late.reject, late.late, late.verdict) == (True, True, "pass")
    counts = gate.counts()
    assert (counts.late, counts.rejected, counts.passed, counts.missed_gate) == (1, 2, 0, 0)
    assert counts.balanced


def test_after_withhold_passes_every_pass_not_yet_published_is_a_rejected_fault_and_rejects_keep_their_class() -> None:
    rejector = SimulatedRejector()
    events: list[GateEvent] = []
    gate = make_gate(rejector, delay_ms=40, on_outcome=events.append)
    t0 = time.monotonic()
    gate.track(1, t0)
    gate.resolve(1, passed(1))
    wait_for(lambda: gate.counts().published == 1)  # released before the station knew of any failure
    for sequence in (2, 3):
        gate.track(sequence, time.monotonic())
    gate.resolve(2, passed(2))
    gate.resolve(3, rejected(3, code=4))
    gate.withhold_passes("the archive failed (disk full)")
    gate.close()

    published = {r.result.sequence: r.result for r in rejector.published}
    assert published[1] == passed(1)
    assert published[2] == ItemResult(2, reject=True, verdict="fault", defect_class_code=0, late=False, error=True)
    assert published[3] == rejected(3, code=4)
    assert [e.withheld_reason for e in events] == [None, "the archive failed (disk full)", None]
    counts = gate.counts()
    assert (counts.passed, counts.rejected) == (1, 2) and counts.balanced


def test_item_reached_past_the_gate_window_is_not_published_and_stops_the_line() -> None:
    rejector = SimulatedRejector(publish_delay_s=0.250)
    events: list[GateEvent] = []
    gate = make_gate(rejector, delay_ms=30, window_ms=50, on_outcome=events.append)
    told: list[str] = []
    gate.on_alarm = told.append
    t0 = time.monotonic()
    gate.track(1, t0)
    gate.track(2, t0 + 0.010)
    gate.resolve(1, passed(1))
    gate.resolve(2, passed(2))
    gate.close()

    assert rejector.sequences == [1]  # firing item 2 now would hit whatever is at the gate now
    assert gate.alarm_active and gate.alarm_reason.startswith("missed_gate: item 2")
    assert rejector.alarm_active and rejector.alarms[-1].active
    assert told == [gate.alarm_reason]  # the station's run summary lists it too
    counts = gate.counts()
    assert (counts.published, counts.missed_gate) == (1, 1)
    assert counts.balanced
    assert [(e.sequence, e.outcome) for e in events] == [(1, Outcome.PUBLISHED), (2, Outcome.MISSED_GATE)]
    assert events[1].lateness > 0.050


def test_every_tracked_item_gets_exactly_one_outcome_and_counts_balance() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=40)
    t0 = time.monotonic()
    expected_reject: dict[int, bool] = {}
    for sequence in range(60):
        trigger = t0 + sequence * 0.002
        gate.track(sequence, trigger)
        if sequence % 10 == 9:
            expected_reject[sequence] = True  # never resolved: times out
            continue
        result = rejected(sequence) if sequence % 3 == 0 else passed(sequence)
        expected_reject[sequence] = result.reject
        assert gate.resolve(sequence, result) is Resolution.SCHEDULED
    gate.close(drain=True)

    assert rejector.sequences == list(range(60))  # each exactly once, in trigger order
    assert {r.result.sequence: r.result.reject for r in rejector.published} == expected_reject
    counts = gate.counts()
    assert counts.tracked == 60 and counts.pending == 0 and counts.timed_out == 6
    assert counts.rejected == sum(expected_reject.values()) == rejector.rejects
    assert counts.passed == 60 - counts.rejected
    assert counts.balanced


def test_publish_failures_are_counted_alarm_the_line_and_the_gate_reconnects_in_the_background() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=20)
    rejector.available = False  # the PLC goes away
    t0 = time.monotonic()
    for sequence in range(3):
        gate.track(sequence, t0)
        gate.resolve(sequence, passed(sequence))
    wait_for(lambda: gate.counts().publish_failures == 3)
    assert [r.sequence for r in rejector.failed] == [0, 1, 2]
    assert gate.alarm_active and gate.alarm_reason.startswith("plc_communication")
    assert rejector.alarm_active  # kept as the wanted state while the link is down

    rejector.available = True  # the PLC comes back; the gate's reconnect thread notices
    wait_for(lambda: rejector.connected)
    assert rejector.reconnects == 1
    gate.track(3, time.monotonic())
    gate.resolve(3, rejected(3))
    gate.close()

    assert rejector.sequences == [3]
    counts = gate.counts()
    assert (counts.publish_failures, counts.published, counts.rejected) == (3, 1, 1)
    assert counts.balanced
    assert gate.alarm_active  # a line stop is released by the operator, not by the reconnect
    gate.clear_alarm()
    assert not gate.alarm_active and not rejector.alarm_active


def test_close_without_drain_abandons_pending_items_and_alarms() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=5_000)
    now = time.monotonic()
    gate.track(1, now)
    gate.track(2, now)
    gate.resolve(1, passed(1))
    assert gate.pending == 2
    gate.close(drain=False)

    assert rejector.published == []
    counts = gate.counts()
    assert (counts.abandoned, counts.pending) == (2, 0)
    assert counts.balanced
    assert gate.alarm_active and gate.alarm_reason.startswith("shutdown")


def test_misuse_is_refused() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=1_000)
    gate.track(1, time.monotonic())
    with pytest.raises(GateError, match="already tracked"):
        gate.track(1, time.monotonic())
    with pytest.raises(GateError, match="never tracked"):
        gate.resolve(99, passed(99))
    with pytest.raises(GateError, match="result of item 2"):
        gate.resolve(1, passed(2))
    gate.resolve(1, passed(1))
    with pytest.raises(GateError, match="already resolved"):
        gate.resolve(1, rejected(1))
    gate.close(drain=False)
    with pytest.raises(GateError, match="closed"):
        gate.track(2, time.monotonic())


class BrokenPosition:
    """A position source that fails once the scheduler asks it how long to wait: a bug that ends the
    scheduler thread."""

    def now(self) -> float:
        return 0.0

    def seconds_until(self, position: float) -> float:
        raise RuntimeError("encoder read failed")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_an_item_tracked_after_the_scheduler_died_is_refused() -> None:
    rejector = SimulatedRejector()
    rejector.open()
    gate = RejectGate.on_position(rejector, BrokenPosition(), transport_distance=1.0, gate_window=1.0)
    gate.track(1, 0.0)  # wakes the scheduler, which dies asking when item 1 is due
    gate._scheduler.join(5.0)
    assert not gate._scheduler.is_alive()
    with pytest.raises(GateError, match="scheduler thread has died"):
        gate.track(2, 0.0)
    gate.close(drain=False, timeout_s=1.0)


def test_a_batch_resolved_at_once_is_scheduled_late_or_already_signalled_per_item() -> None:
    rejector = SimulatedRejector()
    events: list[GateEvent] = []
    gate = make_gate(rejector, delay_ms=500, window_ms=2000, on_outcome=events.append)
    gate.track(1, time.monotonic() - 1.0)  # already past its deadline: timed out by the scheduler at once
    wait_for(lambda: gate.counts().timed_out == 1)
    with gate._cond:  # (re-entrant) holds the scheduler off item 2 until the batch is resolved
        now = time.monotonic()
        gate.track(2, now - 0.510)  # past its deadline, still pending: the gate has not got to it
        gate.track(3, now)  # due in 500 ms
        gate.track(4, now)
        assert gate.resolve_many([passed(1), passed(2), rejected(3), passed(4)]) == [
            Resolution.ALREADY_SIGNALLED, Resolution.LATE, Resolution.SCHEDULED, Resolution.SCHEDULED]
    gate.close()
    assert rejector.sequences == [1, 2, 3, 4]
    assert [(r.result.reject, r.result.late) for r in rejector.published] == [(True, True), (True, True), (True, False), (False, False)]
    assert gate.counts().balanced and len(events) == 4


def test_a_batch_stops_at_a_result_it_cannot_take_and_keeps_those_before() -> None:
    rejector = SimulatedRejector()
    gate = make_gate(rejector, delay_ms=1_000)
    now = time.monotonic()
    gate.track(1, now)
    gate.track(2, now)
    with pytest.raises(GateError, match="item 99 was never tracked"):
        gate.resolve_many([passed(1), passed(99), passed(2)])
    with pytest.raises(GateError, match="item 1 was already resolved"):
        gate.resolve(1, passed(1))
    assert gate.resolve_many([passed(2)]) == [Resolution.SCHEDULED]
    assert gate.resolve_many([]) == []
    gate.close(drain=False)


def test_item_result_refuses_a_silent_pass() -> None:
    for verdict, late, error in [("uncertain", False, False), ("pass", True, False), ("fault", False, True)]:
        with pytest.raises(ValueError, match="reject=True"):
            ItemResult(1, reject=False, verdict=verdict, defect_class_code=0, late=late, error=error)
    with pytest.raises(ValueError, match="verdict"):
        ItemResult(1, reject=True, verdict="maybe", defect_class_code=0, late=False, error=False)


class FakeEncoder:
    """Counts from a belt at 2000 counts/s; the gate sleeps on estimates and re-checks the count."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.t0) * 2000.0

    def seconds_until(self, position: float) -> float:
        return min((position - self.now()) / 2000.0, 0.005)


def test_gate_on_an_encoder_position_source_fires_at_the_count() -> None:
    rejector = SimulatedRejector()
    rejector.open()
    encoder = FakeEncoder()
    gate = RejectGate.on_position(rejector, encoder, transport_distance=100.0, gate_window=400.0)
    trigger_count = encoder.now()
    gate.track(1, trigger_count)
    gate.resolve(1, rejected(1))
    gate.close()
    signal_count = (rejector.published[0].time_s - encoder.t0) * 2000.0
    assert trigger_count + 100.0 <= signal_count < trigger_count + 100.0 + SLACK_S * 2000.0
    # Its lateness is in counts, which the station must not report as milliseconds; a clock gate's is in seconds.
    clock_gate = make_gate(SimulatedRejector(), delay_ms=1)
    clock_gate.close()
    assert not gate.position_in_seconds and clock_gate.position_in_seconds


def test_item_result_from_decision_codes_the_defect_class_by_bundle_index() -> None:
    names = ("good", "chipped", "cracked")
    result = ItemResult.from_decision(5, Decision(Verdict.UNCERTAIN, "cracked", 0.4, "good", "band"), names)
    assert (result.reject, result.verdict, result.defect_class_code, result.error) == (True, "uncertain", 3, False)
    faulted = ItemResult.from_decision(6, fault("camera timeout"), names)
    assert (faulted.reject, faulted.verdict, faulted.defect_class_code, faulted.error) == (True, "fault", 0, True)
    ok = ItemResult.from_decision(7, Decision(Verdict.PASS, None, 0.01, "good", "ok"), names)
    assert (ok.reject, ok.defect_class_code) == (False, 0)
