"""The station's archive writer: one thread beside the hot path, a bounded queue, and no record ever dropped.

submit() only enqueues (PNG encoding and disk I/O happen in the writer thread). When the queue is
full, submit() raises ArchiveBackpressure; after an append error, it raises ArchiveFailed. Either
way the station must alarm and stop the line: a record that cannot be archived is never discarded
silently. The writer commits in one transaction what arrives within group_commit_s of the first
record waiting (up to max_batch), and a record counts as archived (acknowledged) only once its
transaction has committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from station.archive.errors import ArchiveBackpressure, ArchiveError, ArchiveFailed, ChainHeadError
from station.archive.records import ItemRecord
from station.archive.store import Archive

_log = logging.getLogger(__name__)
_IDLE_POLL_S = 0.05


class ArchiveWriter:
    def __init__(
        self,
        archive_root: Path,
        max_queue: int = 1024,
        max_batch: int = 64,
        on_failure: Callable[[Exception], None] | None = None,
        group_commit_s: float = 0.0,
        png_compression: str = "fast",
    ) -> None:
        if max_queue < 1 or max_batch < 1:
            raise ArchiveError(f"max_queue={max_queue} and max_batch={max_batch} must both be >= 1.")
        if not 0.0 <= group_commit_s <= 1.0:
            raise ArchiveError(f"group_commit_s={group_commit_s} must be between 0 and 1 second.")
        self._group_commit_s = group_commit_s
        self._png_compression = png_compression
        self.archive_root = Path(archive_root)
        self.on_failure = on_failure
        self._max_batch = max_batch
        self._queue: queue.Queue[ItemRecord] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Condition()  # guards the counters, _closing and the failure
        self._submitted = 0
        self._archived = 0
        self._failure: Exception | None = None
        self._failed_batch: list[ItemRecord] = []
        self._closing = False
        self._opened = threading.Event()
        self._open_error: Exception | None = None
        self._thread: threading.Thread | None = None

    # ---- station side -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the archive in the writer thread; raises ArchiveError here if it cannot be opened."""
        if self._thread is not None:
            raise ArchiveError("this ArchiveWriter was already started; create a new one.")
        # Daemon: a forgotten close() must not hang interpreter exit; an interrupted commit rolls back.
        self._thread = threading.Thread(target=self._run, name="archive-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            error, self._open_error, self._thread = self._open_error, None, None
            self._opened.clear()
            raise error  # not running: submit() refuses, start() may be retried once the folder is fixed

    def submit(self, record: ItemRecord) -> None:
        """Queue one record without blocking. Raises ArchiveBackpressure or ArchiveFailed: stop the line."""
        with self._lock:
            self._raise_if_failed()
            if self._thread is None or self._closing:
                raise ArchiveError("the archive writer is not running (call start(); it cannot be reused after close()).")
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                raise ArchiveBackpressure(
                    f"archive queue is full ({self._queue.maxsize} records waiting) at lot {record.lot!r} sequence "
                    f"{record.sequence}: the archive disk at {self.archive_root} cannot keep up or is stalled. "
                    "Stop the line and check the disk; the record was not archived."
                ) from None
            self._submitted += 1

    def flush(self, timeout_s: float) -> None:
        """Wait until every record submitted so far is committed; raises on timeout or failure."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._submitted
            while self._archived < target and self._failure is None:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise ArchiveError(
                        f"{target - self._archived} records are still not archived after {timeout_s} s; "
                        f"the archive disk at {self.archive_root} is stalled. Stop the line and check it."
                    )
                self._lock.wait(remaining_s)
            if self._archived < target:
                self._raise_if_failed()

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new records, archive everything queued, stop the thread. Raises if anything is left."""
        with self._lock:
            self._closing = True
        if self._thread is None:
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise ArchiveError(
                f"{self.queue_depth} records are still queued after {timeout_s} s; the archive disk at "
                f"{self.archive_root} is stalled. Do not power off; check the disk."
            )
        with self._lock:
            if self._failure is not None and (self._failed_batch or self._queue.qsize()):
                self._raise_if_failed()

    def __enter__(self) -> "ArchiveWriter":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def archived_count(self) -> int:
        return self._archived

    @property
    def max_queue(self) -> int:
        return self._queue.maxsize

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def failure(self) -> Exception | None:
        return self._failure

    def unarchived(self) -> list[ItemRecord]:
        """Records submitted but not committed (after a failure): the failed batch, then the queue, in order.

        The station lists their sequences in the alarm / deviation so that no item goes unaccounted for.
        """
        with self._lock, self._queue.mutex:
            return [*self._failed_batch, *self._queue.queue]

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise ArchiveFailed(
                f"archiving stopped after an error: {self._failure} The line must stay stopped; "
                f"{len(self._failed_batch) + self._queue.qsize()} records are not archived (ArchiveWriter.unarchived())."
            ) from self._failure

    # ---- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            archive = Archive.open(self.archive_root, png_compression=self._png_compression)
        except Exception as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    archive.append_many(batch)
                except ChainHeadError as exc:
                    self._acknowledge(len(batch))  # committed; only the tripwire file lags
                    self._fail(exc, [])
                    return
                except Exception as exc:
                    self._fail(exc, batch)
                    return
                self._acknowledge(len(batch))
        finally:
            archive.close()

    def _next_batch(self) -> list[ItemRecord] | None:
        """Everything queued (up to max_batch), waiting for the first; None once closing and drained."""
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_POLL_S)
                break
            except queue.Empty:
                with self._lock:
                    # Under the lock: a submit that saw _closing False has already enqueued its record.
                    if self._closing and self._queue.empty():
                        return None
        batch = [first]
        # Group commit: each commit costs two fsyncs (the index and chain_head), whatever it holds, so
        # the writer gathers what arrives within group_commit_s of the first record before committing.
        deadline = time.monotonic() + self._group_commit_s
        while len(batch) < self._max_batch:
            try:
                remaining_s = deadline - time.monotonic()
                batch.append(self._queue.get(timeout=remaining_s) if remaining_s > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _acknowledge(self, n: int) -> None:
        with self._lock:
            self._archived += n
            self._lock.notify_all()

    def _fail(self, exc: Exception, batch: list[ItemRecord]) -> None:
        with self._lock:
            self._failure = exc
            self._failed_batch = batch
            self._lock.notify_all()
        _log.error("archive writer stopped: %s", exc)
        if self.on_failure is not None:
            try:
                self.on_failure(exc)
            except Exception:
                _log.exception("on_failure callback raised")
