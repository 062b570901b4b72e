"""The synthetic line's draws from its pool: the defect rate, every item of a kind, the frame limit."""

from __future__ import annotations

from collections import Counter

import pytest

from station.sources import SourceExhausted
from station.sources.synthetic_line import DRAWS_PER_BLOCK, SyntheticLineSource


def line(pool_size: int, defect_rate: float, frames: int | None = None, seed: int = 5) -> SyntheticLineSource:
    source = SyntheticLineSource(pool_size=pool_size, defect_rate=defect_rate, width_px=32, height_px=32,
                                 seed=seed, frames=frames, progress=False)
    source.open()
    return source


def test_items_are_defective_at_the_defect_rate_and_drawn_from_the_whole_pool_across_blocks() -> None:
    source = line(pool_size=16, defect_rate=0.25)
    frames = [source.read() for _ in range(3 * DRAWS_PER_BLOCK)]
    defective = sum(frame.true_label != "good" for frame in frames)
    # 12,288 draws at p = 0.25: the standard deviation is 48 items.
    assert abs(defective - 0.25 * len(frames)) < 5 * 48
    drawn = Counter(frame.item_key for frame in frames)
    assert set(drawn) == {f"pool-{index}" for index in range(16)}


def test_the_same_seed_draws_the_same_items_and_a_frame_limit_ends_the_line() -> None:
    first, second = line(8, 0.5, frames=DRAWS_PER_BLOCK + 3), line(8, 0.5, frames=DRAWS_PER_BLOCK + 3)
    keys = [first.read().item_key for _ in range(DRAWS_PER_BLOCK + 3)]
    assert keys == [second.read().item_key for _ in range(DRAWS_PER_BLOCK + 3)]
    with pytest.raises(SourceExhausted):
        first.read()


def test_a_one_item_pool_draws_its_good_item_and_refuses_a_defect_rate() -> None:
    assert {line(1, 0.0).read().true_label for _ in range(10)} == {"good"}
    with pytest.raises(ValueError, match="pool_size >= 2 or defect_rate 0"):
        line(1, 0.5).read()
