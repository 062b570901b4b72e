"""ReadAheadLimit: an unpaced replay keeps every worker busy, but no more undecided items than the
station decides in the target wait."""

from __future__ import annotations

from station.read_ahead import RATE_WINDOW_ITEMS, ReadAheadLimit


def limits_at(rate_per_s: float, limit: ReadAheadLimit, seconds: float = 2.0) -> list[int]:
    """The limit after each decision of a station deciding `rate_per_s` items a second."""
    return [limit.limit(n, n / rate_per_s) for n in range(int(rate_per_s * seconds))]


def test_before_the_first_rate_window_it_allows_a_batch_per_worker_and_one_gathering() -> None:
    limit = ReadAheadLimit(max_batch=8, inference_workers=2, target_wait_s=0.125)
    assert limit.most == 24
    assert set(limits_at(1000.0, limit, seconds=(RATE_WINDOW_ITEMS - 1) / 1000.0)) == {24}


def test_a_fast_station_keeps_every_worker_busy() -> None:
    assert limits_at(1000.0, ReadAheadLimit(8, 2, 0.125))[-1] == 24  # 125 items in 125 ms: capped at 3 batches


def test_a_slow_station_reads_ahead_only_what_it_decides_in_the_target_wait() -> None:
    assert limits_at(100.0, ReadAheadLimit(8, 2, 0.125))[-1] == 12  # 100 items/s x 0.125 s
    assert limits_at(10.0, ReadAheadLimit(8, 2, 0.125), seconds=20)[-1] == 8  # never less than one batch


def test_the_limit_follows_a_slow_spell_and_recovers() -> None:
    limit = ReadAheadLimit(8, 2, 0.125)
    now, decided, seen = 0.0, 0, []
    for rate_per_s, seconds in ((1000.0, 1.0), (100.0, 2.0), (1000.0, 1.0)):
        for _ in range(int(rate_per_s * seconds)):
            decided, now = decided + 1, now + 1.0 / rate_per_s
            seen.append(limit.limit(decided, now))
    assert seen[999] == 24 and seen[1199] == 12 and seen[-1] == 24
