"""gate.thread_priority: realtime gives the reject gate's scheduler SCHED_FIFO, or is refused at start."""

import os
import threading

import pytest

from inspection.errors import ConfigError
from station.config import StationConfig
from station.signalling import RejectGate, SimulatedRejector
from station.signalling.thread_priority import GATE_REALTIME_PRIORITY, check_realtime_allowed


def _realtime_permitted() -> bool:
    try:
        check_realtime_allowed()
    except ConfigError:
        return False
    return True


@pytest.mark.skipif(not _realtime_permitted(), reason="needs root or CAP_SYS_NICE (CI runs as root)")
def test_a_realtime_gate_runs_its_scheduler_at_sched_fifo_and_nothing_else():
    gate = RejectGate(SimulatedRejector(), transport_delay_ms=10, realtime=True)
    try:
        scheduler = gate._scheduler.native_id
        assert os.sched_getscheduler(scheduler) == os.SCHED_FIFO
        assert os.sched_getparam(scheduler).sched_priority == GATE_REALTIME_PRIORITY
        assert os.sched_getscheduler(gate._reconnector.native_id) == os.SCHED_OTHER
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's thread is left as it was
    finally:
        gate.close()


def test_a_normal_gate_leaves_scheduling_alone():
    gate = RejectGate(SimulatedRejector(), transport_delay_ms=10)
    try:
        assert os.sched_getscheduler(gate._scheduler.native_id) == os.SCHED_OTHER
    finally:
        gate.close()


def test_without_permission_realtime_is_refused_with_the_fix(monkeypatch):
    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with pytest.raises(ConfigError, match=r"CAP_SYS_NICE.*gate.thread_priority: normal"):
        check_realtime_allowed()
    threads_before = threading.active_count()
    with pytest.raises(ConfigError, match="CAP_SYS_NICE"):
        RejectGate(SimulatedRejector(), transport_delay_ms=10, realtime=True)
    assert threading.active_count() == threads_before  # the refused gate stopped its threads


def test_the_config_takes_normal_or_realtime_only():
    assert StationConfig.model_validate({"bundle": "b"}).gate.thread_priority == "normal"
    assert StationConfig.model_validate({"bundle": "b", "gate": {"thread_priority": "realtime"}}).gate.thread_priority == "realtime"
    with pytest.raises(ValueError, match="thread_priority"):
        StationConfig.model_validate({"bundle": "b", "gate": {"thread_priority": "high"}})
