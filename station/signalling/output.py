"""What the station tells the line about each item, the output Protocol, and a simulated rejector."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from inspection.decision import Decision, Verdict
from station.signalling.errors import PlcConnectionLost

_VERDICTS = frozenset(v.value for v in Verdict)


@dataclass(frozen=True, slots=True)
class ItemResult:
    sequence: int
    reject: bool  # True for reject, uncertain, fault and late items
    verdict: str  # pass | reject | uncertain | fault
    defect_class_code: int  # 0 = none; 1.. = index+1 of the defect class in the bundle's class list
    late: bool
    error: bool  # fault

    def __post_init__(self) -> None:
        # Refuse a record that would pass an item the station is not sure of: the one silent-pass bug
        # that no later layer could notice.
        if self.verdict not in _VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {sorted(_VERDICTS)}")
        if not self.reject and (self.verdict != Verdict.PASS or self.late or self.error):
            raise ValueError(f"item {self.sequence}: a {self.verdict} / late / error result must have reject=True")
        if self.sequence < 0 or not 0 <= self.defect_class_code <= 0xFFFF:
            raise ValueError(f"item {self.sequence}: sequence must be >= 0 and defect_class_code in 0..65535")

    @classmethod
    def from_decision(cls, sequence: int, decision: Decision, class_names: Sequence[str]) -> ItemResult:
        code = class_names.index(decision.defect_class) + 1 if decision.defect_class else 0
        return cls(
            sequence=sequence,
            reject=decision.is_rejected,
            verdict=decision.verdict.value,
            defect_class_code=code,
            late=False,
            error=decision.verdict == Verdict.FAULT,
        )

    @classmethod
    def timed_out(cls, sequence: int) -> ItemResult:
        """No decision by the item's deadline: reject it as a late fault."""
        return cls(sequence, reject=True, verdict=Verdict.FAULT.value, defect_class_code=0, late=True, error=True)

    def as_late(self) -> ItemResult:
        """The same decision, arrived after its deadline: always rejected."""
        return replace(self, reject=True, late=True)

    def as_withheld(self) -> ItemResult:
        """A pass the station can no longer release (see RejectGate.withhold_passes): a rejected fault."""
        return replace(self, reject=True, verdict=Verdict.FAULT.value, error=True)


class ResultOutput(Protocol):
    """What the station calls; one per line. Implementations must be safe to call from two threads
    (the reject gate's scheduler publishes while the station sends heartbeats and alarms)."""

    def open(self) -> None: ...  # connect; PlcUnavailableError (one line: host:port and the fix) if it cannot

    def publish(self, result: ItemResult) -> None: ...  # the item is at the gate; PlcConnectionLost on failure

    def set_alarm(self, active: bool, reason: str = "") -> None: ...  # line-stop output

    def set_ready(self, ready: bool) -> None: ...

    def heartbeat(self) -> None: ...  # called periodically by the station

    def reconnect(self, max_wait_s: float) -> bool: ...  # retry with backoff, restore state; True if connected

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PublishRecord:
    time_s: float  # the rejector's clock when publish() was called
    result: ItemResult


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    time_s: float
    active: bool
    reason: str


class SimulatedRejector:
    """A ResultOutput without I/O, for replay, the demo and tests.

    `publish_delay_s` emulates a slow PLC round trip. Setting `available = False` emulates a PLC that
    went away: every call raises PlcConnectionLost until `reconnect()` runs while it is True again.
    `history`: keep only the last N published and failed results (a station that runs for days on it
    must not grow by one record per item); None keeps all, for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, publish_delay_s: float = 0.0,
                 history: int | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.publish_delay_s = publish_delay_s
        self.available = True
        self.published: list[PublishRecord] | deque[PublishRecord] = deque(maxlen=history) if history else []
        self.failed: list[ItemResult] | deque[ItemResult] = deque(maxlen=history) if history else []
        self.alarms: list[AlarmRecord] = []
        self.rejects = 0
        self.heartbeats = 0
        self.reconnects = 0
        self.ready = False
        self.alarm_active = False
        self.is_open = False
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def open(self) -> None:
        self.is_open = True
        self._connected = self.available

    def _check(self, what: str) -> None:
        if not self.available:
            self._connected = False
        if not self._connected:
            raise PlcConnectionLost(f"simulated PLC is not connected; {what} was not delivered")

    def publish(self, result: ItemResult) -> None:
        now_s = self._clock()
        try:
            self._check(f"result {result.sequence}")
        except PlcConnectionLost:
            with self._lock:
                self.failed.append(result)
            raise
        with self._lock:
            self.published.append(PublishRecord(now_s, result))
            self.rejects += result.reject
        if self.publish_delay_s:
            time.sleep(self.publish_delay_s)

    def set_alarm(self, active: bool, reason: str = "") -> None:
        # The wanted state is kept even when the link is down, as the PLC output restores it on reconnect.
        with self._lock:
            self.alarm_active = active
            self.alarms.append(AlarmRecord(self._clock(), active, reason))
        self._check("the alarm")

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self._check("the ready flag")

    def heartbeat(self) -> None:
        self._check("the heartbeat")
        self.heartbeats += 1

    def reconnect(self, max_wait_s: float) -> bool:
        if self.available and self.is_open and not self._connected:
            self._connected = True
            self.reconnects += 1
        return self._connected

    def close(self) -> None:
        self.is_open = False
        self._connected = False

    @property
    def sequences(self) -> list[int]:
        with self._lock:
            return [record.result.sequence for record in self.published]
