"""The bounded queue between preparation and the inference workers, handing out whole batches.

An inference worker gathering a batch has nothing to do until its batch is full or its wait is over.
With `queue.Queue` it woke for every item put (each put notifies a waiting getter): on a busy station
a wake-up, and a turn at the station process's GIL, per frame. Here a waiting worker says how many
items it still wants, and a put wakes it only once that many are queued, or the queue is closed;
otherwise its wait ends at its deadline. It takes what it wants in one step.

Bounded by items: a paced line that finds it full has an overrun (`put` returns False), an unpaced
replay waits for room. Closing lets the workers take what is left, then tells each it may stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# How often a partial batch that waits for another worker's inference looks whether that is done.
BUSY_WORKER_POLL_S = 0.001


class InferenceQueue:
    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._max_items = max_items
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._enough = threading.Condition(self._lock)  # workers waiting for items
        self._room = threading.Condition(self._lock)  # producers waiting for room
        self._wanted: list[int] = []  # how many items each waiting worker waits for
        self._closed = False

    def qsize(self) -> int:
        return len(self._items)

    def put(self, item, block: bool) -> bool:
        """Queue one item; False when full and `block` is False (the caller's overrun)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("item queued for inference after the queue was closed")
            while len(self._items) >= self._max_items:
                if not block:
                    return False
                self._room.wait()
            self._items.append(item)
            if self._wanted and len(self._items) >= min(self._wanted):
                self._enough.notify_all()  # about once a batch: those that still want more wait again
        return True

    def close(self) -> None:
        """No more items: the workers take what is queued, then stop."""
        with self._lock:
            self._closed = True
            self._enough.notify_all()

    def take_batch(self, max_batch: int, max_wait_s: float,
                   another_batch_inferring: Callable[[], bool]) -> tuple[list, bool]:
        """Up to max_batch items, waiting for the first as long as it takes, then at most max_wait_s for
        the rest, or longer while another worker's batch is in the backend: that batch has the cores,
        and one fuller batch runs more images per core-second than two small ones side by side.
        Returns (batch, whether the queue is closed and empty: the worker may stop)."""
        with self._lock:
            self._wait_for(1, None)
            batch = self._take(max_batch)
            gather_until = time.monotonic() + max_wait_s
            while batch and len(batch) < max_batch and not self._closed:
                remaining_s = gather_until - time.monotonic()
                if remaining_s <= 0:
                    if not another_batch_inferring():
                        break
                    remaining_s = BUSY_WORKER_POLL_S
                self._wait_for(max_batch - len(batch), remaining_s)
                batch += self._take(max_batch - len(batch))
            return batch, self._closed and not self._items

    def _wait_for(self, count: int, timeout_s: float | None) -> None:
        """Under the lock: until `count` items are queued, the queue is closed, or `timeout_s` passes."""
        if len(self._items) >= count or self._closed:
            return
        self._wanted.append(count)
        try:
            self._enough.wait_for(lambda: len(self._items) >= count or self._closed, timeout_s)
        finally:
            self._wanted.remove(count)

    def _take(self, count: int) -> list:
        """Under the lock: up to `count` items, oldest first."""
        taken = [self._items.popleft() for _ in range(min(count, len(self._items)))]
        if taken:
            self._room.notify(len(taken))
        return taken
