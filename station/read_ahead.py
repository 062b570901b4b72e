"""How far an unpaced replay may read ahead of the station's decisions (Little's law).

A replay without a rate sets its own pace, and every item it reads is triggered at once: the reject
gate counts its transport delay from then. Items read ahead only wait in the queue, so their wait
must stay well inside that delay, or they reach the gate late and are rejected as faults. The wait
of a new item is about the number of undecided items divided by the rate the station decides them
(Little's law). So the replay keeps at most as many items undecided as the station decided in
`target_wait_s` at its recent rate, and never more than a batch in the backend for every inference
worker and one being gathered (more would not keep any worker busier), nor fewer than one batch.
The rate is measured as the run goes, so a slow model or a slow spell of the machine shortens the
queue by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The decision rate is re-measured over at least this many decisions and this long.
RATE_WINDOW_ITEMS = 64
RATE_WINDOW_S = 0.05


@dataclass
class ReadAheadLimit:
    max_batch: int
    inference_workers: int
    target_wait_s: float
    _since: tuple[int, float] | None = field(default=None, init=False)  # (decided count, time) where the current window began
    _limit: int | None = field(default=None, init=False)  # None until the first window is measured

    @property
    def most(self) -> int:
        """A batch in the backend for each inference worker, and one being gathered."""
        return (self.inference_workers + 1) * self.max_batch

    def limit(self, decided: int, now_s: float) -> int:
        """Undecided items allowed now, given how many the station has decided so far."""
        if self._since is None:
            self._since = (decided, now_s)
        start_decided, start_s = self._since
        if decided - start_decided >= RATE_WINDOW_ITEMS and now_s - start_s >= RATE_WINDOW_S:
            rate_per_s = (decided - start_decided) / (now_s - start_s)
            self._limit = max(self.max_batch, min(self.most, int(rate_per_s * self.target_wait_s)))
            self._since = (decided, now_s)
        return self.most if self._limit is None else self._limit
