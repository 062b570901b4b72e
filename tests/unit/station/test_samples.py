"""SampleSeries: compact, exact, and safe to append to from several threads."""

import threading

import numpy as np

from station.samples import SampleSeries


def test_keeps_every_value_exactly_past_its_first_buffer():
    series = SampleSeries()
    expected = np.random.default_rng(0).random(10_000) * 50
    for value in expected:
        series.append(float(value))
    assert len(series) == 10_000
    np.testing.assert_array_equal(series.values(), expected)


def test_values_is_a_copy_that_later_appends_do_not_change():
    series = SampleSeries()
    series.append(1.5)
    snapshot = series.values()
    series.append(2.5)
    assert snapshot.tolist() == [1.5] and series.values().tolist() == [1.5, 2.5]


def test_appends_from_several_threads_are_all_kept():
    series = SampleSeries()

    def append_many(offset: int) -> None:
        for i in range(5_000):
            series.append(offset + i)

    threads = [threading.Thread(target=append_many, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(series.values().tolist()) == [float(k * 10_000 + i) for k in range(4) for i in range(5_000)]
