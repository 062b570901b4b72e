"""How an inference worker takes its batch (station.inference_queue.InferenceQueue)."""

import threading
import time

import pytest

from station.inference_queue import InferenceQueue


def queued(*items, max_items: int = 64) -> InferenceQueue:
    pending = InferenceQueue(max_items)
    for item in items:
        assert pending.put(item, block=False)
    return pending


def test_takes_at_most_max_batch_items_oldest_first():
    pending = queued(*range(10))
    assert pending.take_batch(4, 0.001, lambda: False) == ([0, 1, 2, 3], False)
    assert pending.qsize() == 6


def test_a_partial_batch_goes_after_max_wait_when_no_other_batch_is_inferring():
    started = time.monotonic()
    batch, stopping = queued(1, 2).take_batch(8, 0.02, lambda: False)
    assert (batch, stopping) == ([1, 2], False)
    assert time.monotonic() - started < 1.0


def test_a_partial_batch_waits_past_max_wait_while_another_batch_is_inferring():
    pending = queued(1, 2)
    other_inferring = threading.Event()
    other_inferring.set()

    def other_worker_finishes_while_items_arrive() -> None:
        time.sleep(0.05)  # 50 times max_wait
        pending.put(3, block=False)
        time.sleep(0.05)
        other_inferring.clear()

    helper = threading.Thread(target=other_worker_finishes_while_items_arrive)
    helper.start()
    batch, stopping = pending.take_batch(8, 0.001, other_inferring.is_set)
    helper.join()
    assert (batch, stopping) == ([1, 2, 3], False)  # without the wait it would have gone as [1, 2]
    assert not other_inferring.is_set()  # it went once the other batch was done, not before


def test_a_full_batch_does_not_wait_for_another_batch():
    assert queued(1, 2, 3).take_batch(3, 0.001, lambda: True) == ([1, 2, 3], False)


class CountingCondition(threading.Condition):
    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def test_a_gathering_worker_wakes_once_its_batch_is_full_not_for_every_item():
    pending = queued(0)
    pending._enough = counting = CountingCondition(pending._lock)

    def items_arrive_one_by_one() -> None:
        for item in range(1, 8):
            time.sleep(0.01)
            pending.put(item, block=False)

    helper = threading.Thread(target=items_arrive_one_by_one)
    helper.start()
    batch, stopping = pending.take_batch(8, 10.0, lambda: False)
    helper.join()
    assert (batch, stopping) == (list(range(8)), False)
    # One wait for the 7 items it lacked: it was woken when the 7th came. queue.Queue woke it 7 times.
    assert counting.waits == 1


def test_a_worker_waiting_for_its_first_item_wakes_for_it():
    pending = InferenceQueue(64)
    helper = threading.Timer(0.02, pending.put, args=("first",), kwargs={"block": False})
    helper.start()
    assert pending.take_batch(1, 0.001, lambda: False) == (["first"], False)
    helper.join()


def test_closing_lets_the_workers_take_what_is_queued_then_stop():
    pending = queued(1, 2, 3)
    pending.close()
    started = time.monotonic()
    assert pending.take_batch(2, 10.0, lambda: True) == ([1, 2], False)
    assert pending.take_batch(2, 10.0, lambda: True) == ([3], True)  # closed: a partial batch goes at once
    assert pending.take_batch(2, 10.0, lambda: True) == ([], True)
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("items_before_close", [(), (1,)])
def test_closing_wakes_a_waiting_worker(items_before_close):
    pending = queued(*items_before_close)
    closer = threading.Timer(0.05, pending.close)
    closer.start()
    assert pending.take_batch(8, 10.0, lambda: False) == (list(items_before_close), True)
    closer.join()


def test_a_full_queue_refuses_an_item_that_cannot_wait_and_holds_one_that_can_until_there_is_room():
    pending = queued(1, 2, max_items=2)
    assert pending.put(3, block=False) is False  # a paced line's overrun
    put_waiting = threading.Thread(target=pending.put, args=(3,), kwargs={"block": True})
    put_waiting.start()
    time.sleep(0.05)
    assert put_waiting.is_alive() and pending.qsize() == 2
    assert pending.take_batch(1, 0.001, lambda: False) == ([1], False)
    put_waiting.join(timeout=5.0)
    assert not put_waiting.is_alive()
    assert pending.take_batch(8, 0.001, lambda: False) == ([2, 3], False)


def test_an_item_queued_after_close_is_a_bug_not_a_silent_loss():
    pending = InferenceQueue(4)
    pending.close()
    with pytest.raises(RuntimeError, match="after the queue was closed"):
        pending.put(1, block=False)
