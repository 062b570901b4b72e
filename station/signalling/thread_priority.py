"""Real-time scheduling (Linux SCHED_FIFO) for the reject gate's thread.

On two busy cores the gate's thread, woken at an item's deadline, waited for the CPU and the GIL
behind the decoders and the model: in unpaced 640x480 folder replay its lateness reached 12-34 ms
(p99.9 11-32 ms), past the 20 ms gate window now and then. With SCHED_FIFO it preempts every
normal thread the moment it wakes: in the same runs it stayed under 8-12 ms (p99.9 6-8 ms).
Setting it needs root or CAP_SYS_NICE, so it is asked for in the config and refused loudly.
"""

from __future__ import annotations

import os
import threading

from inspection.errors import ConfigError

# SCHED_FIFO priorities run 1-99. Low in that range: above every normal thread, below the kernel's
# own real-time threads. The gate's thread sleeps between deadlines, so it cannot starve the station.
GATE_REALTIME_PRIORITY = 10

_FIX = ("gate.thread_priority: realtime needs permission for real-time scheduling (SCHED_FIFO): run the "
        "station as root or give it CAP_SYS_NICE (e.g. `setcap cap_sys_nice+ep` on its Python), or set "
        "gate.thread_priority: normal")


def make_realtime(native_thread_id: int) -> None:
    """Give one thread of this process SCHED_FIFO scheduling at GATE_REALTIME_PRIORITY."""
    if not hasattr(os, "sched_setscheduler"):
        raise ConfigError(f"this system has no SCHED_FIFO scheduling (Linux only). {_FIX}")
    try:
        os.sched_setscheduler(native_thread_id, os.SCHED_FIFO, os.sched_param(GATE_REALTIME_PRIORITY))
    except PermissionError:
        raise ConfigError(f"not permitted to set real-time scheduling. {_FIX}") from None


def check_realtime_allowed() -> None:
    """Fails now, before a station opens its camera, PLC and archive, where the gate would fail later."""
    failures: list[ConfigError] = []

    def probe() -> None:  # on a throwaway thread: the caller's own scheduling stays as it is
        try:
            make_realtime(threading.get_native_id())
        except ConfigError as exc:
            failures.append(exc)

    thread = threading.Thread(target=probe, name="realtime-probe")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
