"""The pinned-memory staging copy of the GPU backends, which runs without a GPU (numpy only)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inspection.backends.staging import (
    MAX_STAGING_COPY_THREADS,
    PARALLEL_COPY_MIN_BYTES,
    StagingCopier,
    copy_rows,
    staging_copy_threads,
)


class CountingPool(ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=4)
        self.threads_used: set[int] = set()
        self.parts = 0

    def submit(self, fn, *args):
        def run():
            self.threads_used.add(threading.get_ident())
            return fn(*args)
        self.parts += 1
        return super().submit(run)


@pytest.mark.parametrize("rows", [1, 2, 7, 255, 256])
def test_a_large_batch_is_copied_exactly_in_parts_on_the_pool(rows):
    row_bytes = -(-PARALLEL_COPY_MIN_BYTES // 255)  # 255 rows and more reach the parallel copy
    source = np.random.default_rng(rows).integers(0, 256, (rows, row_bytes), dtype=np.uint8)
    destination = np.zeros((256, row_bytes), dtype=np.uint8)
    with CountingPool() as pool:
        copy_rows(destination[:rows], source, pool, threads=4)
    assert np.array_equal(destination[:rows], source)
    assert not destination[rows:].any()
    assert pool.parts == (4 if rows >= 255 else 0)
    assert threading.get_ident() not in pool.threads_used


def test_a_failing_part_is_raised_not_lost():
    source = np.zeros((8, PARALLEL_COPY_MIN_BYTES // 4 - 1), dtype=np.uint8)  # rows one byte short
    with ThreadPoolExecutor(max_workers=4) as pool, pytest.raises(ValueError):
        copy_rows(np.zeros((8, PARALLEL_COPY_MIN_BYTES // 4), dtype=np.uint8), source, pool, threads=4)


@pytest.mark.parametrize("rows", [1, 2, 7, 255])
def test_a_list_of_images_is_copied_row_by_row_as_its_stack_would_be(rows):
    row_bytes = -(-PARALLEL_COPY_MIN_BYTES // 255)
    images = [np.random.default_rng(row).integers(0, 256, (row_bytes,), dtype=np.uint8) for row in range(rows)]
    destination = np.zeros((256, row_bytes), dtype=np.uint8)
    with CountingPool() as pool:
        copy_rows(destination[:rows], images, pool, threads=4)
    assert np.array_equal(destination[:rows], np.stack(images))
    assert not destination[rows:].any()
    assert pool.parts == (4 if rows >= 255 else 0)


def test_an_image_of_another_shape_or_an_unsafe_dtype_is_refused_in_any_part():
    row_bytes = -(-PARALLEL_COPY_MIN_BYTES // 8)
    images = [np.zeros(row_bytes, dtype=np.uint8) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        with pytest.raises(ValueError):
            copy_rows(np.zeros((8, row_bytes), dtype=np.uint8), images[:7] + [np.zeros(row_bytes - 1, dtype=np.uint8)], pool, threads=4)
        with pytest.raises(TypeError):  # a float image would be truncated into uint8 silently
            copy_rows(np.zeros((8, row_bytes), dtype=np.uint8), images[:7] + [np.zeros(row_bytes)], pool, threads=4)
        with pytest.raises(ValueError, match="7 rows cannot be copied into 8"):
            copy_rows(np.zeros((8, row_bytes), dtype=np.uint8), images[:7], pool, threads=4)


def test_a_host_gets_one_copy_thread_for_every_four_cores_up_to_four():
    assert [staging_copy_threads(cores) for cores in (1, 2, 4, 8, 15, 16, 64)] == [1, 1, 1, 2, 3, 4, 4]
    assert 1 <= staging_copy_threads() <= MAX_STAGING_COPY_THREADS


class WatchedImages(list):
    """A list of images that notes the threads reading its parts, and can be slow to read one part."""

    def __init__(self, images, slow_from_row=None):
        super().__init__(images)
        self.readers: set[int] = set()
        self._slow_from_row = slow_from_row

    def __getitem__(self, index):
        self.readers.add(threading.get_ident())
        if isinstance(index, slice) and index.start == self._slow_from_row:
            time.sleep(0.3)
        return super().__getitem__(index)


@pytest.mark.parametrize("threads", [1, 3])
def test_a_copier_copies_on_its_threads_until_closed(threads):
    row_bytes = -(-PARALLEL_COPY_MIN_BYTES // 9)
    images = WatchedImages([np.full(row_bytes, row, dtype=np.uint8) for row in range(9)])
    destination = np.zeros((9, row_bytes), dtype=np.uint8)
    copier = StagingCopier(threads)
    copier.copy(destination, images)
    copier.close()
    assert np.array_equal(destination, np.stack(images)) and copier.threads == threads
    if threads == 1:
        assert images.readers == {threading.get_ident()}
    else:
        assert images.readers and threading.get_ident() not in images.readers  # (an idle pool thread takes the next part)
        with pytest.raises(RuntimeError):  # closed: its threads are gone
            copier.copy(destination, images)


def test_a_failing_part_is_raised_only_once_every_other_part_has_ended():
    # The station lets go of its images when the copy returns: no part may still be reading them.
    row_bytes = -(-PARALLEL_COPY_MIN_BYTES // 8)
    images = [np.full(row_bytes, row, dtype=np.uint8) for row in range(8)]
    images[0] = np.zeros(row_bytes - 1, dtype=np.uint8)  # the first part fails at once
    destination = np.zeros((8, row_bytes), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=4) as pool:
        with pytest.raises(ValueError):
            copy_rows(destination, WatchedImages(images, slow_from_row=6), pool, threads=4)  # the last part is slow
        # Before the pool's shutdown, which waits for its threads: the slow part had already ended.
        assert np.array_equal(destination[6:], np.stack(images[6:]))
