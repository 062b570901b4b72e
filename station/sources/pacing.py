"""Release frames at a fixed item rate, like a line trigger, without drifting."""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, rate_hz: float | None) -> None:
        self._period_s = 1.0 / rate_hz if rate_hz else 0.0
        self._next_s: float | None = None

    def wait(self) -> float:
        """Sleep until the next trigger; returns its monotonic time. No rate: return at once."""
        now = time.monotonic()
        if not self._period_s:
            return now
        if self._next_s is None:
            self._next_s = now
        delay = self._next_s - now
        if delay > 0:
            time.sleep(delay)
        trigger = max(self._next_s, now)
        # Triggers keep their schedule even when one read was slow: a line does not wait for us.
        self._next_s += self._period_s
        return trigger
