"""Frame preparation in worker processes, frames and results passed through shared memory.

Preparing a frame (find the item, crop, shrink: `inspection.preprocess.prepare`) is the station's
costliest step per frame. Preparer threads share the station's interpreter: each frame's hand-over and
Python steps hold its GIL (on 2 cores, 2 threads prepared fewer frames a second than one:
benchmarks/station_overhead.py). Here each worker process prepares whole frames with its own
interpreter. A frame the source built in shared memory (`station.shared_frames`) is read there in
place; any other frame is first copied into a shared slot of the worker's. Either way the station
sends the slot's number, the frame's place and a free prepared buffer's number, and the worker
writes the prepared image into that buffer.

The workers run the very same `prepare`, so a prepared frame is byte for byte the one the capture
thread would have made (a test holds them equal).

Each worker owns `SLOTS_PER_PROCESS` slots: its place in the worker's pipe and, for frames that are
copied, a frame buffer (grown when a larger frame comes). A slot is busy from `submit` until the worker
answers; a worker that dies fails its busy slots and every later `submit` (`PreparerFailed`), so no
frame is ever lost. The prepared image is written into a buffer of a shared pool and lent to the station
as it is (`PreparedImage`), not copied out: the station hands it to its backend, which copies it into
its batch (a GPU backend straight into pinned memory), and then releases it.
The pool has a buffer for every slot and `held_by_station` more (what the station's inference queue
and batches hold), so a free slot finds a free buffer.

A worker that finds several frames waiting in its pipe prepares them all and answers them in one
message (at most `MAX_FRAMES_PER_ANSWER`). Frames only wait there while the worker is busy, so a line
slower than its workers still gets each frame answered alone, and a busy station wakes its threads
once per group, not once per frame: each wake-up costs the one station process more than the
message itself.
"""

from __future__ import annotations

import functools
import multiprocessing
import pickle
import selectors
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory

import cv2
import numpy as np

from inspection.errors import CorruptImageError, InspectionError
from inspection.input_spec import InputSpec
from inspection.preprocess import prepare
from station.shared_frames import SharedFrames, SharedMemoryFull, allocate_shared_memory, release_shared_memory

# A worker answers at most this many frames in one message: the first frame of a group waits for
# the rest to be prepared (8 at about 0.3 ms each), so larger groups would only add latency.
MAX_FRAMES_PER_ANSWER = 8
# A group being prepared and the next one waiting in the pipe: the worker never waits for the
# station; more would only add frames waiting between camera and gate.
SLOTS_PER_PROCESS = 2 * MAX_FRAMES_PER_ANSWER
STARTUP_TIMEOUT_S = 60.0
# A worker keeps this many of the source's shared frame buffers mapped (more than the station keeps,
# in use and free), unmapping the longest unused beyond it: the station releases buffers, and their
# memory is only returned once no process maps them.
ATTACHED_FRAME_BUFFERS = 256
# How a frame that `prepare` refuses is reported, here and by the station's own preparation.
CORRUPT_FRAME = "corrupt frame"

class PreparedImage:
    """A prepared frame (uint8 HxWxC) in a buffer of the preparers' shared pool, lent to the station:
    read `array` (copy it into a batch), then `release()` it for another frame. From then on `array`
    is None; releasing again does nothing."""

    __slots__ = ("array", "_give_back")

    def __init__(self, array: np.ndarray, give_back: Callable[[], None]) -> None:
        self.array: np.ndarray | None = array
        self._give_back: Callable[[], None] | None = give_back

    def release(self) -> None:
        give_back, self._give_back, self.array = self._give_back, None, None
        if give_back is not None:
            give_back()


# (the prepared image or None, error text or None, milliseconds the worker spent preparing it or None
# when it did not): called on the collector thread.
PreparedCallback = Callable[[PreparedImage | None, str | None, float | None], None]


class PreparerFailed(InspectionError):
    """A preparer process did not start or died: the station cannot prepare frames any more."""


@dataclass
class _Slot:
    number: int
    worker: int
    frame: SharedMemory | None = None  # for frames that are copied
    on_done: PreparedCallback | None = None
    image: np.ndarray | None = None  # a frame read in place, held until the worker is done with it
    prepared: int | None = None  # the pool buffer its frame is prepared into


class _FreePool:
    """Free slots, or free prepared buffers. Last freed, first taken: its buffers are still in the CPU's
    cache (a slot's worker has just answered). A list and one lock: queue.LifoQueue's Python-level get
    and put cost the station process a few µs a frame."""

    def __init__(self) -> None:
        self._free: list = []
        self._freed = threading.Condition(threading.Lock())
        self._waiting = 0

    def put(self, thing) -> None:
        with self._freed:
            self._free.append(thing)
            if self._waiting:
                self._freed.notify()

    def take(self, timeout_s: float):
        """A free one, waiting up to `timeout_s`; None when none came."""
        with self._freed:
            if not self._free and timeout_s > 0:
                self._waiting += 1
                try:
                    self._freed.wait(timeout_s)
                finally:
                    self._waiting -= 1
            return self._free.pop() if self._free else None

    def take_all(self) -> list:
        with self._freed:
            taken, self._free = self._free, []
            return taken


class PreparerProcesses:
    def __init__(self, spec: InputSpec, processes: int, shared_frames: SharedFrames | None = None,
                 held_by_station: int = 0) -> None:
        """`shared_frames`: where the station's source builds its frames, read by the workers in place.
        `held_by_station`: how many prepared images the station may hold unreleased at most (beyond them,
        a frame waits for one to be released, or is an overrun)."""
        if processes < 1 or held_by_station < 0:
            raise ValueError("processes must be at least 1 and held_by_station at least 0")
        self._prepared_shape = (spec.size_px, spec.size_px, spec.channels)
        # spawn, not fork: the station process has threads (and maybe CUDA) that a fork would copy
        # half-way; the workers import only numpy, OpenCV and the preprocessing.
        context = multiprocessing.get_context("spawn")
        self._connections: list[Connection] = []
        self._processes = []
        self._slots: list[_Slot] = []
        self._collector: threading.Thread | None = None
        self._free = _FreePool()  # slots
        self._prepared: list[SharedMemory] = []  # the pool of prepared buffers, by number
        # Made once for each buffer, not for every frame lent from it (0.9 µs a frame on the collector):
        # the array over it, and the call that gives it back.
        self._lendable: list[tuple[np.ndarray, Callable[[], None]]] = []
        self._free_prepared = _FreePool()  # their numbers
        self._pool_closed = False
        self._busy_lock = threading.Lock()
        self._death_lock = threading.Lock()
        self._failure: str | None = None
        self._closing = False
        self._shared_frames = shared_frames
        self.frames_read_in_place = 0
        self.frames_copied = 0
        self.answers = 0  # messages the workers answered with: a busy station gets several frames in each
        for number in range(processes):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(target=serve, args=(theirs, spec), name=f"prepare-{number + 1}", daemon=True)
            process.start()
            theirs.close()
            self._connections.append(ours)
            self._processes.append(process)
        self._slots = [_Slot(number, number % processes) for number in range(processes * SLOTS_PER_PROCESS)]
        try:
            for _ in range(len(self._slots) + held_by_station):
                self._prepared.append(_allocate(int(np.prod(self._prepared_shape))))
        except PreparerFailed:
            self.close()
            raise
        self._lendable = [self._lending(buffer) for buffer in range(len(self._prepared))]
        for number, connection in enumerate(self._connections):
            self._wait_until_ready(number, connection)
            connection.send({buffer: memory.name for buffer, memory in enumerate(self._prepared)})
        for slot in self._slots:
            self._free.put(slot)
        for buffer in range(len(self._prepared)):
            self._free_prepared.put(buffer)
        self._collector = threading.Thread(target=self._collect, name="prepared", daemon=True)
        self._collector.start()

    def _wait_until_ready(self, number: int, connection: Connection) -> None:
        try:
            ready = connection.poll(STARTUP_TIMEOUT_S) and connection.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if ready:
            return
        self.close()
        raise PreparerFailed(
            f"preparer process {number + 1} did not start (exit code {self._processes[number].exitcode}); a script "
            "that runs the station must do so under `if __name__ == \"__main__\":` (worker processes import the "
            "main module), and the station needs room for shared memory in /dev/shm")

    @property
    def failure(self) -> str | None:
        return self._failure

    def submit(self, image: np.ndarray, on_done: PreparedCallback, wait: bool) -> bool:
        """Hand the frame to a worker; `on_done` gets its prepared image or the error, once. False when every
        slot is busy, or every prepared buffer held, and `wait` is False (the caller's overrun). Raises
        PreparerFailed, the frame not taken, once a worker has died (`failure` says which and how)."""
        if (slot := self._take(self._free, wait)) is None:
            return False
        try:
            prepared = self._take(self._free_prepared, wait)
        except PreparerFailed:
            self._free.put(slot)
            raise
        if prepared is None:
            self._free.put(slot)
            return False
        located = self._shared_frames.locate(image) if self._shared_frames is not None else None
        if located is None:
            try:
                where = self._copy_into(slot, image)
            except PreparerFailed:
                self._free.put(slot)
                self._free_prepared.put(prepared)
                raise
            strides, offset = None, 0
            self.frames_copied += 1
        else:
            frame_name, offset = located
            where, strides = ("shared", frame_name), image.strides
            self.frames_read_in_place += 1
        with self._busy_lock:
            slot.on_done, slot.image, slot.prepared = on_done, (image if located is not None else None), prepared
        try:
            # pickle.dumps, not Connection.send: that builds a ForkingPickler for every message (2 µs
            # against 0.4 here) for what is plain data; the worker's recv() reads either.
            message = (slot.number, prepared, image.shape, image.dtype.str, strides, offset, where)
            self._connections[slot.worker].send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            # Registered, the frame is the worker's: its failure reaches `on_done` like any it held.
            self._worker_died(slot.worker, f"cannot be reached: {exc}")
        return True

    def _take(self, pool: _FreePool, wait: bool):
        """A free slot or buffer from `pool`; None when there is none and `wait` is False."""
        while True:
            if self._failure is not None:
                raise PreparerFailed(self._failure)
            # A worker that dies once a slot is taken fails the frame through `on_done` (see below).
            if (taken := pool.take(0.1 if wait else 0.0)) is not None:
                return taken
            if not wait:
                return None

    @staticmethod
    def _copy_into(slot: _Slot, image: np.ndarray) -> tuple[str, str | None]:
        """Copy the frame into the slot's frame buffer, grown first if need be; where the worker finds it."""
        new_buffer = slot.frame is None or slot.frame.size < image.nbytes
        if new_buffer:
            larger = _allocate(image.nbytes)
            release_shared_memory(slot.frame)  # the worker is done with it: the slot was free
            slot.frame = larger
        np.ndarray(image.shape, image.dtype, buffer=slot.frame.buf)[...] = image  # as it is: the worker checks it
        return "slot", (slot.frame.name if new_buffer else None)

    def _collect(self) -> None:
        """One thread for every worker's answers: a thread per worker would mostly wait for the GIL,
        and each wait is another context switch of the station process."""
        with selectors.DefaultSelector() as selector:  # kept: setting one up for each wait costs more than the wait
            for worker, connection in enumerate(self._connections):
                selector.register(connection, selectors.EVENT_READ, worker)
            while selector.get_map():
                for key, _ in selector.select():
                    connection, worker = key.fileobj, key.data
                    try:
                        answers = connection.recv()
                    except (EOFError, OSError):
                        # Closing, a worker ends once it has sent back all it held; one that ends holding
                        # frames, or ends before closing, died.
                        selector.unregister(connection)
                        if not self._closing or self._holds_frames(worker):
                            self._worker_died(worker)
                        continue
                    self.answers += 1
                    for number, error, prepare_ms in answers:
                        self._hand_back(self._slots[number], error, prepare_ms)

    def _hand_back(self, slot: _Slot, error: str | None, prepare_ms: float | None) -> None:
        with self._busy_lock:
            on_done, slot.on_done, slot.image, buffer, slot.prepared = slot.on_done, None, None, slot.prepared, None
        if on_done is None:  # an answer read after its worker was found dead: the frame already failed
            return
        self._free.put(slot)
        prepared = None
        if error:
            self._give_back_prepared(buffer)
        else:  # lent as it is, not copied out: the station's batch is the one copy it makes
            lendable = self._lendable  # emptied by close(): a collector that outlived it makes its own
            prepared = PreparedImage(*(lendable[buffer] if buffer < len(lendable) else self._lending(buffer)))
        try:
            on_done(prepared, error, prepare_ms)
        except Exception as exc:  # the caller's bug: stop taking frames, but go on handing back the rest
            with self._busy_lock:
                if self._failure is None:
                    self._failure = (f"handing back a prepared frame failed ({type(exc).__name__}: {exc}); "
                                     "restart the station")

    def _lending(self, buffer: int) -> tuple[np.ndarray, Callable[[], None]]:
        """What a PreparedImage lent from this prepared buffer holds: the array over it, and its give-back."""
        return (np.ndarray(self._prepared_shape, np.uint8, buffer=self._prepared[buffer].buf),
                functools.partial(self._give_back_prepared, buffer))

    def _give_back_prepared(self, buffer: int) -> None:
        with self._busy_lock:
            if not self._pool_closed:
                self._free_prepared.put(buffer)
                return
        try:  # lent past close: its name is already gone, and now nothing reads it
            self._prepared[buffer].close()
        except BufferError:  # a view of it still lives: its mapping goes when that does
            pass

    def _holds_frames(self, worker: int) -> bool:
        with self._busy_lock:
            return any(slot.worker == worker and slot.on_done is not None for slot in self._slots)

    def _worker_died(self, worker: int, how: str | None = None) -> None:
        """`how`: what the station saw (a broken pipe), told only when the process has no exit code to tell."""
        process = self._processes[worker]
        with self._death_lock:  # one thread reaps it: a second waiting at once would read no exit code
            process.join(timeout=1.0)
            exit_code = process.exitcode
        if exit_code is not None or how is None:
            how = f"exit code {exit_code}"
        message = f"preparer process {worker + 1} stopped ({how}); restart the station"
        with self._busy_lock:
            if self._failure is None:
                self._failure = message
            held = [slot for slot in self._slots if slot.worker == worker and slot.on_done is not None]
            pending = [(slot.on_done, slot.prepared) for slot in held]
            for slot in held:
                slot.on_done, slot.image, slot.prepared = None, None, None
        for on_done, buffer in pending:
            self._give_back_prepared(buffer)  # the worker is dead: nothing writes there any more
            on_done(None, message, None)

    def close(self) -> None:
        """Stop the workers once they have finished what they hold, and free the shared memory."""
        if self._closing:
            return
        self._closing = True
        for connection in self._connections:
            try:
                connection.send(None)
            except OSError:
                pass  # already gone
        with self._death_lock:
            for process in self._processes:
                process.join(timeout=5.0)
                if process.is_alive():
                    process.kill()
                    process.join()
        if self._collector is not None:
            self._collector.join(timeout=5.0)
        for connection in self._connections:
            connection.close()
        for slot in self._slots:
            release_shared_memory(slot.frame)
        with self._busy_lock:
            self._pool_closed = True
            free = set(self._free_prepared.take_all())
            # Our views (a buffer cannot be unmapped while one lives) and give-backs (they refer back to this
            # object, which would then wait for the cyclic GC to be freed).
            self._lendable = []
        for buffer, memory in enumerate(self._prepared):
            if buffer in free:
                release_shared_memory(memory)
            else:  # lent to the station: unmapped when it gives it back
                memory.unlink()


def _allocate(size_bytes: int) -> SharedMemory:
    try:
        return allocate_shared_memory(size_bytes)
    except SharedMemoryFull as exc:
        raise PreparerFailed(str(exc)) from exc


def serve(connection: Connection, spec: InputSpec) -> None:
    """A worker process: prepare each frame it is sent into its slot's prepared buffer, until None."""
    cv2.setNumThreads(1)  # a process per core: OpenCV's own threads would only compete with the others
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole process group; the station decides
    connection.send("ready")
    if (prepared_names := _next_message(connection)) is None:  # the station closed before it named the prepared buffers
        return
    prepared_buffers = {number: SharedMemory(name=name) for number, name in prepared_names.items()}
    slot_frames: dict[int, SharedMemory] = {}  # frames copied into a slot, by slot number
    shared_frames: OrderedDict[str, SharedMemory] = OrderedDict()  # the source's buffers, by name, last used last
    ended = False
    while not ended:
        messages, ended = waiting_frames(connection)
        answers = []
        for number, prepared, shape, dtype, strides, offset, where in messages:
            memory = _frame_memory(number, where, shared_frames, slot_frames)
            frame = np.ndarray(shape, dtype, buffer=memory.buf, offset=offset, strides=strides)
            started = time.perf_counter()
            error = _prepare_into(frame, prepared_buffers[prepared], spec)
            del frame  # a live view would keep its buffer from being detached
            answers.append((number, error, (time.perf_counter() - started) * 1000))
        if answers:
            try:
                connection.send(answers)
            except OSError:  # the station is gone
                break
    for memory in (*slot_frames.values(), *shared_frames.values(), *prepared_buffers.values()):
        _detach(memory)


def _frame_memory(number: int, where: tuple[str, str | None], shared_frames: OrderedDict[str, SharedMemory],
                  slot_frames: dict[int, SharedMemory]) -> SharedMemory:
    """The shared memory a frame message points at, mapped here if it is new."""
    kind, name = where
    if kind == "shared":
        if name in shared_frames:
            shared_frames.move_to_end(name)
        else:
            shared_frames[name] = SharedMemory(name=name)
            if len(shared_frames) > ATTACHED_FRAME_BUFFERS:
                _detach(shared_frames.popitem(last=False)[1])
        return shared_frames[name]
    if name is not None:  # the slot's frame buffer was replaced by a larger one
        _detach(slot_frames.pop(number, None))
        slot_frames[number] = SharedMemory(name=name)
    return slot_frames[number]


def waiting_frames(connection: Connection) -> tuple[list, bool]:
    """The next frame message, waiting for it, and those already waiting behind it, up to
    MAX_FRAMES_PER_ANSWER; and whether the station ended (closed, or gone: its pipe closed)."""
    messages = []
    while len(messages) < MAX_FRAMES_PER_ANSWER and (not messages or connection.poll(0)):
        if (message := _next_message(connection)) is None:
            return messages, True
        messages.append(message)
    return messages, False


def _next_message(connection: Connection):
    """The station's next message; None, to end, also when the station is gone (killed: the pipe closed)."""
    try:
        return connection.recv()
    except (EOFError, OSError):
        return None


def _prepare_into(frame: np.ndarray, prepared_memory: SharedMemory, spec: InputSpec) -> str | None:
    """Prepare the frame into its slot's prepared buffer; the error text for the item's fault, or None."""
    try:
        result = prepare(frame, spec)
    except CorruptImageError as exc:
        return f"{CORRUPT_FRAME}: {exc}"
    except Exception as exc:  # any other failure faults this item; the worker goes on
        return f"preparation failed: {type(exc).__name__}: {exc}"
    np.ndarray(result.shape, np.uint8, buffer=prepared_memory.buf)[...] = result
    return None


def _detach(memory: SharedMemory | None) -> None:
    if memory is not None:
        memory.close()
