"""The frame contract every source delivers, and the source Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SourceExhausted(Exception):
    """The source has no more frames (end of a replay). Not an error."""


@dataclass(frozen=True, slots=True)
class Frame:
    item_key: str  # what identifies the item at the source: file name, camera frame id, pool index
    image: np.ndarray | None  # canonical uint8 HxW or HxWx3 RGB; None when the frame was lost or corrupt
    trigger_time_s: float  # time.monotonic() at the trigger; the reject gate counts from here
    captured_utc: str
    true_label: str | None = None  # ground truth when the source knows it (synthetic line)
    error: str | None = None  # why `image` is None: corrupt frame, camera timeout, ...


class FrameSource(Protocol):
    description: str
    # True when frames come at the line's pace (a camera, a replay with a rate): a full inference
    # queue is then an overrun fault. False for replay as fast as possible: the station sets the pace.
    paced: bool
    # Optional (default False): True for a camera, whose frames all have one size; a frame of another
    # size or channel count is then a fault and an alarm (the camera was reconfigured or swapped).
    fixed_resolution: bool

    def open(self) -> None: ...

    def read(self) -> Frame:
        """Block until the next item's frame; raise SourceExhausted at the end of a replay."""
        ...

    def close(self) -> None: ...
