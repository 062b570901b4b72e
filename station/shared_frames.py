"""Frame buffers in shared memory, which preparer processes read where the source put them.

With preparer processes, copying each 640x480 frame into a worker's slot cost the station process
about 100 µs of CPU a frame, a quarter of its whole cost (benchmarks/preparer_handover.py). A source
that builds its frames here (a camera copies each grab out of the driver's buffer anyway) hands them
to the workers with no copy: a frame is sent as its buffer's name and place.

A buffer is in use as long as its frame array, or any view of it, lives: the station keeps a frame
until its record is archived. When Python frees the last reference, the buffer goes back on the free
list for the next frame of the same size; beyond KEEP_FREE_BUFFERS free ones (a folder of images of
many sizes, an archive backlog drained) it is released, so /dev/shm holds about what is in use.
"""

from __future__ import annotations

import bisect
import os
import threading
import weakref
from multiprocessing.shared_memory import SharedMemory

import numpy as np
from numpy.lib.array_utils import byte_bounds

from inspection.errors import InspectionError

KEEP_FREE_BUFFERS = 64  # about 60 MB of 640x480 colour frames


# How a source reports a frame it grabbed but found no room for in shared memory: the station numbers
# that item as a fault (it passed the camera, uninspected) and then ends the run with the fix.
NO_ROOM_FOR_FRAME = "no room in shared memory for this frame"


class SharedMemoryFull(InspectionError):
    """No room in /dev/shm for a shared buffer."""


def allocate_shared_memory(size_bytes: int) -> SharedMemory:
    """A new shared-memory block with all its pages reserved now: on a full /dev/shm that is this
    error, where a block only sized (ftruncate) would kill the process with SIGBUS at its first write."""
    memory = SharedMemory(create=True, size=max(1, size_bytes))
    try:
        os.posix_fallocate(memory._fd, 0, memory.size)  # the fd SharedMemory keeps open; no public accessor
    except OSError as exc:
        release_shared_memory(memory)
        raise SharedMemoryFull(f"cannot allocate {size_bytes:,} bytes of shared memory ({exc.strerror or exc}): free "
                               "space in /dev/shm, or set batching.prepare_processes to 0") from exc
    return memory


def release_shared_memory(memory: SharedMemory | None) -> None:
    if memory is not None:
        memory.close()
        memory.unlink()


class SharedFrames:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[int, list[SharedMemory]] = {}  # by size in bytes
        self._free_count = 0
        # Every buffer: (start addresses, sorted; the buffers in the same order). Replaced whole, so that
        # `locate` reads it without the lock.
        self._index: tuple[list[int], list[SharedMemory]] = ([], [])
        # The buffer names of the frames `new_frame` made, by id(), while they live: `locate` finds them
        # without reading their addresses (3.5 µs a frame), or the name (SharedMemory.name builds it each
        # time). An entry leaves as its frame is freed, before its id can be reused.
        self._frames_made: dict[int, str] = {}
        self._closed = False

    def new_frame(self, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> np.ndarray:
        """An uninitialised frame array in shared memory, for the source to fill."""
        dtype = np.dtype(dtype)
        size_bytes = int(np.prod(shape)) * dtype.itemsize
        with self._lock:
            if self._closed:
                raise RuntimeError("the shared frame buffers are closed")
            free = self._free.get(size_bytes)
            memory = free.pop() if free else None
            self._free_count -= memory is not None
        if memory is None:
            try:
                memory = self._add_block(size_bytes)
            except SharedMemoryFull:
                # The free buffers kept for reuse are of other sizes (one of this size would have been
                # taken): give them back, rather than end the run for want of the room they hold.
                if not self._release_free_buffers():
                    raise
                memory = self._add_block(size_bytes)
        frame = np.ndarray(shape, dtype, buffer=memory.buf)
        self._frames_made[id(frame)] = memory.name
        finalizer = weakref.finalize(frame, self._give_back, memory, size_bytes, id(frame))
        finalizer.atexit = False
        return frame

    def copy_of(self, image: np.ndarray) -> np.ndarray:
        frame = self.new_frame(image.shape, image.dtype)
        frame[...] = image
        return frame

    def locate(self, image: np.ndarray) -> tuple[str, int] | None:
        """(buffer name, byte offset of the image's first element) when the image lies in one of these
        buffers; None for any other array."""
        if (name := self._frames_made.get(id(image))) is not None:
            return name, 0
        starts, blocks = self._index  # a view of a frame
        if not starts:
            return None
        low, high = byte_bounds(image)
        place = bisect.bisect_right(starts, low) - 1
        if place < 0 or high > starts[place] + blocks[place].size:
            return None
        return blocks[place].name, image.__array_interface__["data"][0] - starts[place]

    @property
    def buffers(self) -> int:
        return len(self._index[0])

    def _add_block(self, size_bytes: int) -> SharedMemory:
        memory = allocate_shared_memory(size_bytes)
        probe = np.frombuffer(memory.buf, np.uint8)
        start = probe.ctypes.data
        del probe
        with self._lock:
            if self._closed:  # closed while this block was made
                release_shared_memory(memory)
                raise RuntimeError("the shared frame buffers are closed")
            starts, blocks = self._index
            place = bisect.bisect_right(starts, start)
            self._index = (starts[:place] + [start] + starts[place:], blocks[:place] + [memory] + blocks[place:])
        return memory

    def _release_free_buffers(self) -> bool:
        """Release every free buffer kept for reuse; False when there was none."""
        with self._lock:
            free = [memory for memories in self._free.values() for memory in memories]
            self._free.clear()
            self._free_count = 0
            released = {id(memory) for memory in free}
            kept = [(start, block) for start, block in zip(*self._index) if id(block) not in released]
            self._index = ([start for start, _ in kept], [block for _, block in kept])  # before they are unmapped
        for memory in free:
            release_shared_memory(memory)
        return bool(free)

    def _give_back(self, memory: SharedMemory, size_bytes: int, frame_id: int) -> None:
        # Runs as the frame array is freed, after its last use: the buffer is free to reuse, or to unmap.
        self._frames_made.pop(frame_id, None)
        with self._lock:
            if self._closed:  # its name is already gone
                memory.close()
                return
            if self._free_count < KEEP_FREE_BUFFERS:
                self._free.setdefault(size_bytes, []).append(memory)
                self._free_count += 1
                return
            starts, blocks = self._index
            place = blocks.index(memory)  # before it is unmapped: `locate` must never find a stale address
            self._index = (starts[:place] + starts[place + 1:], blocks[:place] + blocks[place + 1:])
        release_shared_memory(memory)

    def close(self) -> None:
        """Remove every buffer's name from /dev/shm and unmap the free ones; a buffer that still holds a
        frame is unmapped when that frame is freed (unmapping it now would pull the memory from under it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            free = [memory for memories in self._free.values() for memory in memories]
            self._free.clear()
            blocks = self._index[1]
            self._index = ([], [])
            self._frames_made.clear()  # their names are gone: no worker could find them
        for memory in blocks:
            memory.unlink()
        for memory in free:
            memory.close()
