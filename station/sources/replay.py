"""Replay a folder of images (in name order) or a video file, as if a camera delivered them."""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from inspection.errors import ConfigError, CorruptImageError
from inspection.image_io import is_image_path, read_image, to_canonical_image
from station.archive.records import utc_now_iso
from station.shared_frames import NO_ROOM_FOR_FRAME, SharedFrames, SharedMemoryFull
from station.sources.base import Frame, SourceExhausted
from station.sources.pacing import Pacer

# FFmpeg logs a file it cannot open ("moov atom not found") or a refused stream on stderr itself;
# the source reports that in its own one line. Set OPENCV_FFMPEG_LOGLEVEL to see FFmpeg's lines.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v"})
# Files are decoded ahead of the station, as a camera delivers decoded frames: decoding a PNG
# overlaps with preparing the previous frame and with inference instead of preceding them. Two
# threads, because a camera-size PNG takes longer to decode (about 7 ms for 640x480 here) than the
# model takes to classify it: on 2 cores, 138-141 against 101-106 frames/s with one thread, and no
# loss on small files (benchmarks/ultralytics_compare.py). Results are taken in file order.
DECODE_THREADS = 2
READ_AHEAD_FILES = 4 * DECODE_THREADS


class FolderReplaySource:
    """Every image file below a folder, sorted by relative path; a corrupt file becomes a faulted frame."""

    fixed_resolution = False  # a folder of dataset images may mix sizes on purpose

    def __init__(self, folder: Path, rate_hz: float | None = None, frames: int | None = None, loop: bool = False,
                 shared_frames: SharedFrames | None = None) -> None:
        """`shared_frames`: decode into shared memory, for preparer processes (the copy made on a decoder thread)."""
        self._folder = Path(folder)
        self._shared_frames = shared_frames
        self._pacer = Pacer(rate_hz)
        self.paced = rate_hz is not None
        self._frames = frames
        self._loop = loop
        self._paths: list[Path] = []
        self._submitted = 0  # files given to the decoder
        self._decoder: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Path, Future[np.ndarray]]] = deque()
        self.description = f"folder replay {self._folder}, {rate_hz or 'max'} Hz"

    def open(self) -> None:
        if not self._folder.is_dir():
            raise ConfigError(f"replay folder {self._folder} does not exist. Pass a folder of images.")
        self._paths = sorted(p for p in self._folder.rglob("*") if p.is_file() and is_image_path(p))
        if not self._paths:
            raise ConfigError(f"replay folder {self._folder} holds no PNG/JPEG/BMP/TIFF images. Pass a folder of images.")
        self._decoder = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="replay-decode")
        self._decode_ahead()

    def read(self) -> Frame:
        if not self._pending:
            raise SourceExhausted
        path, decoded = self._pending.popleft()
        self._decode_ahead()
        trigger = self._pacer.wait()
        key = path.relative_to(self._folder).as_posix()
        label = path.parent.name if path.parent != self._folder else None
        try:
            image = decoded.result()
        except CorruptImageError as exc:
            return Frame(key, None, trigger, utc_now_iso(), label, error=str(exc))
        except SharedMemoryFull as exc:
            return Frame(key, None, trigger, utc_now_iso(), label, error=f"{NO_ROOM_FOR_FRAME}: {exc}")
        return Frame(key, image, trigger, utc_now_iso(), label)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.shutdown(wait=True, cancel_futures=True)
            self._decoder = None
        self._pending.clear()
        self._paths = []

    def _decode_ahead(self) -> None:
        while len(self._pending) < READ_AHEAD_FILES and self._has_file(self._submitted):
            path = self._paths[self._submitted % len(self._paths)]
            self._pending.append((path, self._decoder.submit(self._decode, path)))
            self._submitted += 1

    def _decode(self, path: Path) -> np.ndarray:
        image = read_image(path)
        return image if self._shared_frames is None else self._shared_frames.copy_of(image)

    def _has_file(self, index: int) -> bool:
        if self._frames is not None and index >= self._frames:
            return False
        return self._loop or index < len(self._paths)


# A live capture (camera index or stream URL) that stops delivering is reopened after these waits,
# doubling: a USB camera unplugged returns at once from every read, and without the wait an unpaced
# station would turn the outage into thousands of fault items a second.
FIRST_REOPEN_WAIT_S = 0.1
MAX_REOPEN_WAIT_S = 2.0


class VideoCaptureSource:
    """OpenCV VideoCapture: a video file, a USB camera index or a stream URL (RTSP, HTTP).

    A file that ends is the end of the run. A live target that fails a read gives a fault frame,
    alarms once, and is reopened (after a wait that doubles up to MAX_REOPEN_WAIT_S) until it
    delivers again, which alarms too: the items imaged meanwhile cannot be counted, as OpenCV
    numbers no frames."""

    fixed_resolution = True

    def __init__(self, target: str | int, rate_hz: float | None = None, frames: int | None = None) -> None:
        self._target = target
        self._pacer = Pacer(rate_hz)
        self.paced = rate_hz is not None
        self._frames = frames
        self._capture: cv2.VideoCapture | None = None
        self._count = 0
        self._announced_frames = 0
        self.alarms: list[str] = []
        self.missed_frames = 0
        self.reconnects = 0
        self._lost_at_s: float | None = None
        self._reopen_wait_s = FIRST_REOPEN_WAIT_S
        self.description = f"opencv capture {target}"

    def open(self) -> None:
        try:
            self._capture = cv2.VideoCapture(self._target)
        except cv2.error:  # e.g. a camera index beyond what the backend's int can hold
            raise ConfigError(f"OpenCV cannot open capture source {self._target!r}. Check the file, camera index or URL.") from None
        if not self._capture.isOpened():
            raise ConfigError(f"OpenCV cannot open capture source {self._target!r}. Check the file, camera index or URL.")
        # A file's container announces its length: ending before it means the file is cut off.
        self._announced_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self._is_file() else 0

    def _is_file(self) -> bool:
        return isinstance(self._target, str) and Path(self._target).is_file()

    def read(self) -> Frame:
        if self._frames is not None and self._count >= self._frames:
            raise SourceExhausted
        trigger = self._pacer.wait()
        ok, frame = self._capture.read()
        self._count += 1
        if not ok:
            if self._is_file():
                delivered = self._count - 1
                if delivered < self._announced_frames and not self.alarms:
                    self.missed_frames = self._announced_frames - delivered
                    self.alarms.append(f"video {self._target} ended after {delivered} of the {self._announced_frames} "
                                       "frames it announces (cut off or damaged); the rest were not inspected")
                raise SourceExhausted
            self._reopen()
            return Frame(f"frame-{self._count}", None, trigger, utc_now_iso(), error="camera delivered no frame")
        if self._lost_at_s is not None:
            self.reconnects += 1
            self.alarms.append(f"opencv capture {self._target} delivers again after {time.monotonic() - self._lost_at_s:.1f} s; "
                               "items that passed the camera meanwhile were not imaged")
            self._lost_at_s, self._reopen_wait_s = None, FIRST_REOPEN_WAIT_S
        return Frame(f"frame-{self._count}", to_canonical_image(frame, str(self._target), bgr=True), trigger, utc_now_iso())

    def _reopen(self) -> None:
        """After a failed read of a live target: alarm once per outage, wait, open the target again."""
        if self._lost_at_s is None:
            self._lost_at_s = time.monotonic()
            self.alarms.append(f"opencv capture {self._target} delivered no frame (disconnected?); reopening it")
        time.sleep(self._reopen_wait_s)
        self._reopen_wait_s = min(2 * self._reopen_wait_s, MAX_REOPEN_WAIT_S)
        self._capture.release()
        try:
            self._capture = cv2.VideoCapture(self._target)
        except cv2.error:
            pass  # still away: the released capture fails the next read, which tries again (the outage is alarmed)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
