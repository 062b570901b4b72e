"""A camera-like synthetic line: a pool of distinct rendered items delivered from memory, with truth.

Rendering is slow compared with a camera driver, so the pool is rendered once before the run and
then frames are handed out by reference, at a configurable rate and defect rate. The per-frame cost
is then like a driver's (a buffer hand-over), which is what a throughput benchmark must see.
"""

from __future__ import annotations

import numpy as np

from inspection.console import progress_bar
from inspection.synthetic import CLASSES, render_item
from station.archive.records import utc_now_iso
from station.shared_frames import SharedFrames
from station.sources.base import Frame, SourceExhausted
from station.sources.pacing import Pacer

# Items are drawn from the pool this many at a time: drawing each alone (two of numpy's scalar random
# calls) cost 2 µs of a frame's read, about a tenth of the capture thread's whole work per frame.
DRAWS_PER_BLOCK = 4096


class SyntheticLineSource:
    fixed_resolution = True

    def __init__(
        self,
        rate_hz: float | None = None,
        defect_rate: float = 0.02,
        pool_size: int = 256,
        width_px: int = 640,
        height_px: int = 480,
        seed: int = 0,
        frames: int | None = None,
        progress: bool = True,
        product: str = "mixed",
        shared_frames: SharedFrames | None = None,
    ) -> None:
        """`shared_frames`: render the pool into shared memory, for preparer processes to read in place."""
        self._shared_frames = shared_frames
        self._settings = (defect_rate, pool_size, width_px, height_px, seed)
        self._product = product
        self._frames = frames
        self._pacer = Pacer(rate_hz)
        self.paced = rate_hz is not None
        self._progress = progress
        self._pool: list[tuple[np.ndarray, str]] = []
        self._good: list[int] = []
        self._defective: list[int] = []
        self._count = 0
        self._rng = np.random.default_rng(seed)
        self._drawn: list[int] = []  # pool indices of the next items, last first
        self.description = f"synthetic line {width_px}x{height_px}, {defect_rate:.1%} defects, pool {pool_size}, {rate_hz or 'max'} Hz"
        if product != "mixed":
            self.description += f", product {product}"

    def open(self) -> None:
        defect_rate, pool_size, width, height, seed = self._settings
        # The pool holds half good and half defective items so that every defect class is in it;
        # the defect rate is applied when items are drawn from it.
        labels = [CLASSES[0] if i % 2 == 0 else CLASSES[1 + (i // 2) % (len(CLASSES) - 1)] for i in range(pool_size)]
        with progress_bar(enabled=self._progress, transient=True) as bar:
            for index, label in enumerate(bar.track(labels, description="rendering line items")):
                item = render_item(seed, index, label, width, height, product=self._product)
                image = item.image if self._shared_frames is None else self._shared_frames.copy_of(item.image)
                self._pool.append((image, item.label))
                (self._good if label == CLASSES[0] else self._defective).append(index)

    def read(self) -> Frame:
        if self._frames is not None and self._count >= self._frames:
            raise SourceExhausted
        if not self._drawn:  # before the trigger: the next frame's capture time does not include it
            self._drawn = self._draw()
        index = self._drawn.pop()
        trigger = self._pacer.wait()
        image, label = self._pool[index]
        self._count += 1
        return Frame(f"pool-{index}", image, trigger, utc_now_iso(), true_label=label)

    def _draw(self) -> list[int]:
        """The pool indices of the next DRAWS_PER_BLOCK items (last first): each defective with
        probability `defect_rate`, then any item of its kind with equal chance."""
        defect_rate, *_ = self._settings
        defective = self._rng.random(DRAWS_PER_BLOCK) < defect_rate
        good, bad = (np.asarray(kind)[self._rng.integers(len(kind), size=DRAWS_PER_BLOCK)] if kind else None
                     for kind in (self._good, self._defective))
        if bad is None:  # a one-item pool holds only a good item
            if defective.any():
                raise ValueError("a synthetic line pool of 1 item holds no defective item: use pool_size >= 2 or defect_rate 0")
            return good[::-1].tolist()
        return np.where(defective, bad, good)[::-1].tolist()

    def close(self) -> None:
        self._pool.clear()

