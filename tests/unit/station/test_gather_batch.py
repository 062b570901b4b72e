"""How an inference worker gathers its batch (station.pipeline.gather_batch)."""

import queue
import threading
import time

from station.pipeline import _STOP, gather_batch


def queued(*items) -> queue.Queue:
    pending: queue.Queue = queue.Queue()
    for item in items:
        pending.put(item)
    return pending


def test_takes_at_most_max_batch_items():
    pending = queued(*range(10))
    assert gather_batch(pending, 4, 0.001, lambda: False) == ([0, 1, 2, 3], False)
    assert pending.qsize() == 6


def test_a_partial_batch_goes_after_max_wait_when_no_other_batch_is_inferring():
    started = time.monotonic()
    batch, stopping = gather_batch(queued(1, 2), 8, 0.02, lambda: False)
    assert (batch, stopping) == ([1, 2], False)
    assert time.monotonic() - started < 1.0


def test_a_partial_batch_waits_past_max_wait_while_another_batch_is_inferring():
    pending = queued(1, 2)
    other_inferring = threading.Event()
    other_inferring.set()

    def other_worker_finishes_while_items_arrive() -> None:
        time.sleep(0.05)  # 50 times max_wait
        pending.put(3)
        time.sleep(0.05)
        other_inferring.clear()

    helper = threading.Thread(target=other_worker_finishes_while_items_arrive)
    helper.start()
    batch, stopping = gather_batch(pending, 8, 0.001, other_inferring.is_set)
    helper.join()
    assert (batch, stopping) == ([1, 2, 3], False)  # without the wait it would have gone as [1, 2]
    assert not other_inferring.is_set()  # it went once the other batch was done, not before


def test_a_full_batch_does_not_wait_for_another_batch():
    assert gather_batch(queued(1, 2, 3), 3, 0.001, lambda: True) == ([1, 2, 3], False)


def test_stop_ends_gathering_and_keeps_the_items_before_it():
    assert gather_batch(queued(1, 2, _STOP, 4), 8, 0.001, lambda: True) == ([1, 2], True)
    assert gather_batch(queued(_STOP), 8, 0.001, lambda: True) == ([], True)
