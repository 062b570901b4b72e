"""Frame preparation in real worker processes (spawned, shared memory): same bytes, faults, a dead worker."""

import os
import signal
import threading

import numpy as np
import pytest

from inspection.input_spec import InputSpec
from inspection.preprocess import prepare
from inspection.synthetic import render_item
from station.prepare_processes import (ATTACHED_FRAME_BUFFERS, MAX_FRAMES_PER_ANSWER, SLOTS_PER_PROCESS, PreparerFailed,
                                      PreparerProcesses)
from station.shared_frames import KEEP_FREE_BUFFERS, SharedFrames

SPEC = InputSpec(size_px=48, channels=3, colour_order="bgr", mean=(0.5,) * 3, std=(0.25,) * 3,
                 item_crop_fraction=0.6, shrink="box_then_linear")


class Results:
    """Collects what the collector thread hands back, by the number each frame was given."""

    def __init__(self) -> None:
        self.by_number: dict[int, tuple[np.ndarray | None, str | None]] = {}
        self.prepare_ms: dict[int, float | None] = {}  # what the worker spent preparing each
        self._arrived = threading.Condition()

    def callback(self, number: int):
        def on_done(prepared, error, prepare_ms):
            array = None
            if prepared is not None:  # lent: kept as a copy, and its buffer given back for the next frame
                array = prepared.array.copy()
                prepared.release()
            with self._arrived:
                self.by_number[number] = (array, error)
                self.prepare_ms[number] = prepare_ms
                self._arrived.notify_all()
        return on_done

    def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.by_number) >= count, timeout=timeout_s), self.by_number.keys()


@pytest.fixture()
def shared():
    """Shared frame buffers, as a source with preparer processes builds its frames in; closed after the pools."""
    frames = SharedFrames()
    yield frames
    frames.close()


@pytest.fixture()
def preparers(shared):
    made = []

    def start(processes: int, spec: InputSpec = SPEC, shared_frames: SharedFrames | None = None,
              held_by_station: int = 0) -> PreparerProcesses:
        made.append(PreparerProcesses(spec, processes, shared_frames, held_by_station))
        return made[-1]

    yield start
    for preparer in made:
        preparer.close()


def frames() -> list[np.ndarray]:
    """Line frames of two sizes (the larger after the smaller, so slots grow), colour and grey."""
    rendered = [render_item(3, index, label, width, height).image
                for index, (label, width, height) in enumerate([("good", 160, 120), ("chipped", 160, 120), ("good", 320, 240),
                                                                 ("cracked", 320, 240), ("good", 160, 120)] * 2)]
    return rendered + [np.ascontiguousarray(rendered[2][:, :, 1]), rendered[3][::2, ::2]]  # grey; not contiguous


def test_processes_prepare_every_frame_byte_for_byte_as_prepare_does(preparers):
    pool, images, results = preparers(2), frames(), Results()
    for number, image in enumerate(images):
        assert pool.submit(image, results.callback(number), wait=True)
    results.wait_for(len(images))
    for number, image in enumerate(images):
        prepared, error = results.by_number[number]
        assert error is None
        assert prepared.dtype == np.uint8 and np.array_equal(prepared, prepare(image, SPEC)), number
        assert 0 < results.prepare_ms[number] < 10_000


def test_a_corrupt_frame_is_reported_and_the_worker_goes_on(preparers):
    pool, results = preparers(1), Results()
    good = frames()[0]
    pool.submit(good.astype(np.uint16), results.callback(0), wait=True)
    pool.submit(np.zeros((120, 160, 4), np.uint8), results.callback(1), wait=True)
    pool.submit(good, results.callback(2), wait=True)
    results.wait_for(3)
    for number in (0, 1):
        prepared, error = results.by_number[number]
        assert prepared is None and error.startswith("corrupt frame: frame has shape")
    assert np.array_equal(results.by_number[2][0], prepare(good, SPEC))


def test_every_slot_busy_is_an_overrun_without_waiting(preparers):
    pool, results, image = preparers(1), Results(), frames()[0]
    worker = pool._processes[0].pid
    os.kill(worker, signal.SIGSTOP)  # frozen: it holds every frame it is given
    try:
        for number in range(SLOTS_PER_PROCESS):
            assert pool.submit(image, results.callback(number), wait=False)
        assert pool.submit(image, results.callback(99), wait=False) is False
    finally:
        os.kill(worker, signal.SIGCONT)
    results.wait_for(SLOTS_PER_PROCESS)
    assert 99 not in results.by_number and all(error is None for _, error in results.by_number.values())


def test_frames_that_wait_for_a_busy_worker_come_back_together_each_as_prepare_makes_it(preparers):
    pool, results, images = preparers(1), Results(), frames()
    worker = pool._processes[0].pid
    os.kill(worker, signal.SIGSTOP)  # busy: every frame handed over waits in its pipe
    try:
        for number in range(SLOTS_PER_PROCESS):
            assert pool.submit(images[number % len(images)], results.callback(number), wait=False)
    finally:
        os.kill(worker, signal.SIGCONT)
    results.wait_for(SLOTS_PER_PROCESS)
    assert pool.answers == SLOTS_PER_PROCESS // MAX_FRAMES_PER_ANSWER
    for number in range(SLOTS_PER_PROCESS):
        prepared, error = results.by_number[number]
        assert error is None and np.array_equal(prepared, prepare(images[number % len(images)], SPEC)), number
        assert results.prepare_ms[number] > 0
    # A frame that finds the worker idle is answered alone, at once.
    assert pool.submit(images[0], results.callback(SLOTS_PER_PROCESS), wait=True)
    results.wait_for(SLOTS_PER_PROCESS + 1)
    assert pool.answers == SLOTS_PER_PROCESS // MAX_FRAMES_PER_ANSWER + 1


def test_a_worker_that_dies_fails_the_frames_it_held_and_every_later_one(preparers):
    pool, results, image = preparers(2), Results(), frames()[0]
    victim, survivor = (process.pid for process in pool._processes)
    for worker in (victim, survivor):  # frozen while every slot of both is filled: each holds its share
        os.kill(worker, signal.SIGSTOP)
    for number in range(2 * SLOTS_PER_PROCESS):
        assert pool.submit(image, results.callback(number), wait=False)
    os.kill(victim, signal.SIGKILL)
    os.kill(survivor, signal.SIGCONT)
    results.wait_for(2 * SLOTS_PER_PROCESS)
    errors = [error for _, error in results.by_number.values()]
    assert errors.count(None) == SLOTS_PER_PROCESS
    failed = [error for error in errors if error is not None]
    assert len(failed) == SLOTS_PER_PROCESS
    assert all(error == f"preparer process 1 stopped (exit code -{int(signal.SIGKILL)}); restart the station" for error in failed)
    assert sorted(ms is None for ms in results.prepare_ms.values()) == [False] * SLOTS_PER_PROCESS + [True] * SLOTS_PER_PROCESS
    with pytest.raises(PreparerFailed, match="preparer process 1 stopped"):
        pool.submit(image, results.callback(100), wait=True)


def test_a_prepared_image_is_lent_as_prepared_until_released_and_its_buffer_then_serves_another_frame(preparers):
    pool, images = preparers(1, held_by_station=2), frames()
    kept, arrived = {}, threading.Semaphore(0)

    def keep(number):
        def on_done(prepared, error, prepare_ms):
            kept[number] = prepared
            arrived.release()
        return on_done

    for number in range(SLOTS_PER_PROCESS + 2):  # a buffer for each slot, and the 2 the station may hold
        assert pool.submit(images[number % len(images)], keep(number), wait=True)
        assert arrived.acquire(timeout=30)
    assert pool.submit(images[0], keep(99), wait=False) is False  # slots are free, but no buffer is
    for number, prepared in kept.items():  # none was written over by a later frame
        assert np.array_equal(prepared.array, prepare(images[number % len(images)], SPEC)), number
    kept[3].release()
    assert kept[3].array is None
    kept[3].release()  # once only: a second release gives nothing back
    assert pool.submit(images[1], keep(100), wait=False)  # into the buffer released
    assert arrived.acquire(timeout=30)
    assert pool.submit(images[2], keep(101), wait=False) is False
    assert np.array_equal(kept[100].array, prepare(images[1], SPEC))
    assert np.array_equal(kept[4].array, prepare(images[4 % len(images)], SPEC))


def test_a_prepared_image_released_after_close_is_readable_until_then_and_leaves_nothing_in_dev_shm(preparers):
    before = set(os.listdir("/dev/shm"))
    pool, image, kept = preparers(1), frames()[0], []
    arrived = threading.Event()

    def keep(prepared, error, prepare_ms):
        kept.append(prepared)
        arrived.set()

    assert pool.submit(image, keep, wait=True) and arrived.wait(30)
    pool.close()  # as the station's capture ends with items still queued for inference
    assert not set(os.listdir("/dev/shm")) - before
    assert np.array_equal(kept[0].array, prepare(image, SPEC))
    kept[0].release()


def test_closing_frees_the_shared_memory(preparers):
    shared = "/dev/shm"
    before = set(os.listdir(shared))
    pool, results = preparers(1), Results()
    images = frames()
    for number, image in enumerate(images):
        pool.submit(image, results.callback(number), wait=True)
    results.wait_for(len(images))
    assert set(os.listdir(shared)) - before  # the slots live there while the workers run
    pool.close()
    assert not set(os.listdir(shared)) - before


def test_no_room_for_shared_memory_is_an_error_that_names_the_fix_and_takes_no_frame(preparers, monkeypatch):
    pool, results = preparers(1), Results()

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)  # /dev/shm full: reserving the slot's pages fails
    with pytest.raises(PreparerFailed, match=r"No space left on device\): free space in /dev/shm, or set batching.prepare_processes to 0"):
        pool.submit(frames()[0], results.callback(0), wait=True)
    monkeypatch.undo()
    image = frames()[0]
    assert pool.submit(image, results.callback(1), wait=True)  # the slot was given back
    results.wait_for(1)
    assert 0 not in results.by_number and np.array_equal(results.by_number[1][0], prepare(image, SPEC))


def test_frames_in_shared_memory_are_read_in_place_and_prepared_byte_for_byte(preparers, shared):
    pool, results = preparers(2, shared_frames=shared), Results()
    images = [shared.copy_of(image) for image in frames()]
    images += [images[2][10:200, 20:300], images[0][:, :, 1]]  # views into shared frames: strided
    images.append(frames()[4])  # not in shared memory: copied into a slot
    for number, image in enumerate(images):
        assert pool.submit(image, results.callback(number), wait=True)
    results.wait_for(len(images))
    assert (pool.frames_read_in_place, pool.frames_copied) == (len(images) - 1, 1)
    for number, image in enumerate(images):
        prepared, error = results.by_number[number]
        assert error is None and np.array_equal(prepared, prepare(image, SPEC)), number


def test_frames_of_ever_new_sizes_keep_shared_memory_bounded_and_are_prepared_right(preparers, shared):
    """A folder of images of many sizes: the station releases buffers beyond those it keeps free, and a
    worker unmaps those it has not used for longest (more sizes here than either keeps)."""
    pool, results = preparers(1, shared_frames=shared), Results()
    base = render_item(5, 0, "cracked", 400, 300).image
    sizes = [(120 + i % 150, 160 + i // 150) for i in range(ATTACHED_FRAME_BUFFERS + 60)]
    expected = {}
    for number, (height, width) in enumerate(sizes):
        frame = shared.copy_of(base[:height, :width])
        expected[number] = prepare(frame, SPEC)
        assert pool.submit(frame, results.callback(number), wait=True)
        del frame  # as the station lets go of a frame once it is decided
        assert shared.buffers <= KEEP_FREE_BUFFERS + SLOTS_PER_PROCESS + 1
    results.wait_for(len(sizes))
    assert all(results.by_number[n][1] is None and np.array_equal(results.by_number[n][0], expected[n])
               for n in expected)


def test_a_callback_that_fails_stops_new_frames_but_the_rest_still_come_back(preparers):
    pool, results, image = preparers(1), Results(), frames()[0]
    second_frame_handed_over = threading.Event()

    def broken(prepared, error, prepare_ms):
        # Fails only once the second frame is with the worker: the frame it must still hand back.
        second_frame_handed_over.wait(timeout=30)
        raise KeyError("item 7")

    pool.submit(image, broken, wait=True)
    assert pool.submit(image, results.callback(1), wait=True)
    second_frame_handed_over.set()
    results.wait_for(1)
    assert np.array_equal(results.by_number[1][0], prepare(image, SPEC))
    with pytest.raises(PreparerFailed, match=r"handing back a prepared frame failed \(KeyError: 'item 7'\); restart the station"):
        pool.submit(image, results.callback(2), wait=True)
