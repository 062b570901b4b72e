"""TimingHistogram: constant memory, exact count/sum/max, percentiles within its 1% bins."""

import threading

import numpy as np
import pytest

from station.timing_histogram import BIN_RATIO, UPPER_EDGES, TimingHistogram, bin_of, percentile_of_counts


def test_percentiles_are_within_one_bin_above_the_exact_ones():
    values = np.random.default_rng(0).lognormal(mean=1.5, sigma=0.8, size=20_000)
    timings = TimingHistogram()
    for value in values:
        timings.record(float(value))
    assert timings.count == 20_000 and timings.maximum == values.max()
    assert timings.total == pytest.approx(values.sum())
    for q in (50, 99):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert exact <= timings.percentile(q) <= exact * BIN_RATIO
    assert timings.percentile(100) == values.max()
    assert timings.summary()["max"] == values.max()


def test_memory_does_not_grow_with_the_run():
    timings = TimingHistogram()
    before = timings.counts().nbytes
    for i in range(50_000):
        timings.record(1.0 + i % 300)
    assert timings.counts().nbytes == before and timings.counts().sum() == 50_000


def test_each_value_lands_in_the_bin_whose_edges_hold_it():
    for value in (0.0, 1e-3, 0.0123, 0.5, 1.0, 7.3, 250.0, 1e6, 1e12):
        index = bin_of(value)
        assert value <= UPPER_EDGES[index]
        assert index == 0 or value > UPPER_EDGES[index - 1]


def test_empty_and_mean_and_prometheus_buckets():
    timings = TimingHistogram()
    assert timings.summary() == {"p50": None, "p99": None, "max": None} and timings.mean() is None
    for value in (0.5, 1.5, 3.0, 30.0):
        timings.record(value)
    assert timings.mean() == pytest.approx(8.75)
    assert timings.cumulative_counts((1, 2, 5, 10, 50)) == [1, 2, 3, 3, 4]
    assert percentile_of_counts(np.zeros_like(timings.counts()), 50) is None


def test_records_from_several_threads_are_all_counted():
    timings = TimingHistogram()

    def record_many() -> None:
        for i in range(5_000):
            timings.record(0.1 + i % 50)

    threads = [threading.Thread(target=record_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert timings.count == 20_000 and timings.counts().sum() == 20_000


def test_a_batch_recorded_at_once_counts_as_its_values_one_by_one():
    values = [float(v) for v in np.random.default_rng(1).lognormal(mean=1.0, sigma=1.0, size=500)]
    one_by_one, at_once = TimingHistogram(), TimingHistogram()
    for value in values:
        one_by_one.record(value)
    at_once.record_many(values[:200])
    at_once.record_many([])
    at_once.record_many(values[200:])
    assert np.array_equal(at_once.counts(), one_by_one.counts())
    assert (at_once.count, at_once.maximum) == (one_by_one.count, one_by_one.maximum)
    assert at_once.total == pytest.approx(one_by_one.total)
