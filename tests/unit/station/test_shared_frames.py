"""Frame buffers in shared memory: reserved when made, reused once a frame is freed, found by address."""

import gc
import os

import numpy as np
import pytest

from station.shared_frames import (KEEP_FREE_BUFFERS, SharedFrames, SharedMemoryFull, allocate_shared_memory,
                                   release_shared_memory)

FRAME = (480, 640, 3)


@pytest.fixture()
def shared():
    frames = SharedFrames()
    yield frames
    frames.close()


def shm_names() -> set[str]:
    return set(os.listdir("/dev/shm"))


def test_a_new_block_has_its_pages_reserved_so_a_full_dev_shm_cannot_kill_the_station_later():
    memory = allocate_shared_memory(3 * 1024 * 1024)
    try:
        # Only sized (ftruncate), a tmpfs file has no pages: the first write past the free space is SIGBUS.
        assert os.stat(f"/dev/shm/{memory.name}").st_blocks * 512 >= memory.size
    finally:
        release_shared_memory(memory)


def test_no_room_is_an_error_that_names_the_fix_and_leaves_no_block(shared, monkeypatch):
    before = shm_names()

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(SharedMemoryFull, match=r"cannot allocate 921,600 bytes of shared memory \(No space left on device\): "
                                                r"free space in /dev/shm, or set batching.prepare_processes to 0"):
        shared.new_frame(FRAME)
    assert shm_names() == before


def test_with_no_room_for_a_new_size_the_free_buffers_kept_for_reuse_are_given_back_first(shared, monkeypatch):
    before = shm_names()
    kept = [shared.new_frame((120, 160, 3)) for _ in range(3)]
    del kept
    gc.collect()
    assert shared.buffers == 3 and len(shm_names() - before) == 3  # free, kept for frames of their size
    real_fallocate, calls = os.posix_fallocate, []

    def full_until_they_go(fd, offset, length):
        calls.append(length)
        if len(shm_names() - before) > 1:  # the three kept buffers and the new one: no room
            raise OSError(28, "No space left on device")
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", full_until_they_go)
    frame = shared.new_frame(FRAME)  # another size: none of the kept buffers fits it
    assert len(calls) == 2 and shared.buffers == 1 and len(shm_names() - before) == 1
    assert shared.locate(frame) is not None and shared._index[1][0].size == frame.nbytes


def test_a_buffer_is_reused_only_once_its_frame_and_every_view_of_it_are_freed(shared):
    first = shared.new_frame(FRAME)
    name = shared.locate(first)[0]
    crop = first[100:200, 100:200]
    del first
    gc.collect()
    second = shared.new_frame(FRAME)  # the crop still holds the first buffer
    second_name = shared.locate(second)[0]
    assert second_name != name and shared.buffers == 2
    del crop, second
    gc.collect()
    third = shared.new_frame(FRAME)
    assert shared.locate(third)[0] in {name, second_name} and shared.buffers == 2
    smaller = shared.new_frame((120, 160))
    assert shared.buffers == 3 and smaller.shape == (120, 160)


def test_locate_gives_the_buffer_and_offset_of_frames_and_views_and_nothing_for_other_arrays(shared):
    frame = shared.copy_of(np.arange(np.prod(FRAME), dtype=np.uint32).astype(np.uint8).reshape(FRAME))
    name, offset = shared.locate(frame)
    assert offset == 0
    view = frame[10:20, 30:40, 1]
    assert shared.locate(view) == (name, (10 * 640 + 30) * 3 + 1)
    assert shared.locate(np.array(view)) is None
    assert shared.locate(np.zeros(FRAME, np.uint8)) is None
    frame_id = id(frame)
    del frame, view
    others = [np.zeros(FRAME, np.uint8) for _ in range(4)]  # CPython reuses a freed object's memory, and id
    assert frame_id in {id(other) for other in others}
    assert all(shared.locate(other) is None for other in others)


def test_closing_removes_every_name_and_a_frame_still_held_stays_readable_until_freed():
    before = shm_names()
    frames = SharedFrames()
    kept = frames.copy_of(np.full(FRAME, 9, np.uint8))
    dropped = frames.new_frame(FRAME)
    del dropped
    assert len(shm_names() - before) == 2
    frames.close()
    assert shm_names() == before
    assert frames.locate(kept) is None  # its name is gone: a worker could not open it
    assert int(kept.sum()) == 9 * kept.size  # unmapped only when freed: reading it now must not crash
    with pytest.raises(RuntimeError, match="closed"):
        frames.new_frame(FRAME)
    del kept


def test_beyond_the_free_buffers_kept_a_freed_buffer_is_released_so_many_sizes_do_not_fill_dev_shm(shared):
    before = shm_names()
    frames = [shared.new_frame((100 + size, 64)) for size in range(KEEP_FREE_BUFFERS + 20)]  # every one its own size
    assert shared.buffers == KEEP_FREE_BUFFERS + 20
    while frames:
        frames.pop(0)  # freed in order: the first ones are kept
    assert shared.buffers == KEEP_FREE_BUFFERS and len(shm_names() - before) == KEEP_FREE_BUFFERS
    reused = shared.new_frame((100, 64))  # the first size's buffer was kept: reused, nothing new
    assert shared.buffers == KEEP_FREE_BUFFERS and shared.locate(reused) is not None
    kept_starts, kept_blocks = shared._index
    assert len(kept_starts) == len(kept_blocks) == KEEP_FREE_BUFFERS and kept_starts == sorted(kept_starts)
