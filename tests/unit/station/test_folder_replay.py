import threading
from pathlib import Path

import numpy as np
import pytest

import station.sources.replay as replay_module
from station.sources.base import SourceExhausted
from station.sources.replay import READ_AHEAD_FILES, FolderReplaySource
from helpers.images import write_png


def folder_of_frames(root: Path, count: int, corrupt: set[int] = frozenset()) -> Path:
    for i in range(count):
        path = root / f"{i:03d}.png"
        if i in corrupt:
            path.write_bytes(b"not a png")
        else:
            write_png(path, np.full((8, 12, 3), i, dtype=np.uint8))
    return root


def read_all(source: FolderReplaySource) -> list:
    frames = []
    while True:
        try:
            frames.append(source.read())
        except SourceExhausted:
            return frames


def test_frames_come_in_name_order_with_corrupt_files_faulted_in_place(tmp_path: Path) -> None:
    source = FolderReplaySource(folder_of_frames(tmp_path, 10, corrupt={3, 7}))
    source.open()
    frames = read_all(source)
    source.close()
    assert [f.item_key for f in frames] == [f"{i:03d}.png" for i in range(10)]
    assert [i for i, f in enumerate(frames) if f.image is None] == [3, 7]
    assert all("cannot be decoded" in frames[i].error for i in (3, 7))
    assert [int(f.image[0, 0, 0]) for f in frames if f.image is not None] == [0, 1, 2, 4, 5, 6, 8, 9]


@pytest.mark.parametrize(("frames", "loop", "expected"), [(None, False, 5), (3, False, 3), (12, True, 12), (8, False, 5)])
def test_frame_limit_and_loop(tmp_path: Path, frames: int | None, loop: bool, expected: int) -> None:
    source = FolderReplaySource(folder_of_frames(tmp_path, 5), frames=frames, loop=loop)
    source.open()
    keys = [f.item_key for f in read_all(source)]
    source.close()
    assert keys == [f"{i % 5:03d}.png" for i in range(expected)]


def test_files_are_decoded_ahead_on_other_threads_and_closing_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_on: list[str] = []
    real_read_image = replay_module.read_image

    def recording_read_image(path: Path) -> np.ndarray:
        decoded_on.append(threading.current_thread().name)
        return real_read_image(path)

    monkeypatch.setattr(replay_module, "read_image", recording_read_image)
    source = FolderReplaySource(folder_of_frames(tmp_path, 3 * READ_AHEAD_FILES))
    source.open()
    source.read()
    source.close()
    # Never more than the read-ahead beyond what the station took, and never on the caller's thread.
    assert 1 <= len(decoded_on) <= READ_AHEAD_FILES + 1
    assert {name.split("_")[0] for name in decoded_on} == {"replay-decode"}
    assert not any(t.name.startswith("replay-decode") for t in threading.enumerate())


def test_a_cut_off_video_alarms_and_counts_the_frames_it_never_delivered(tmp_path) -> None:
    import cv2

    from station.sources.replay import VideoCaptureSource

    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for i in range(15):
        writer.write(np.random.default_rng(i).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    writer.release()
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * 0.6)])
    source = VideoCaptureSource(str(path))
    source.open()
    delivered = 0
    with pytest.raises(SourceExhausted):
        while True:
            source.read()
            delivered += 1
    assert 0 < delivered < 15 and source.missed_frames == 15 - delivered
    assert source.alarms == [f"video {path} ended after {delivered} of the 15 frames it announces (cut off or damaged); "
                             "the rest were not inspected"]


def test_a_live_capture_that_stops_delivering_is_reopened_and_both_ends_of_the_outage_alarm(tmp_path, monkeypatch) -> None:
    import cv2

    from station.sources import replay
    from station.sources.replay import VideoCaptureSource

    # A file opened by URL is a live target to the source (not a file it can finish): when its frames
    # run out, the read fails like an unplugged camera's, and reopening the URL delivers again.
    path = tmp_path / "live.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for i in range(3):
        writer.write(np.full((96, 96, 3), 40 * i, np.uint8))
    writer.release()
    monkeypatch.setattr(replay, "FIRST_REOPEN_WAIT_S", 0.01)
    source = VideoCaptureSource(f"file://{path}")
    source.open()
    frames = [source.read() for _ in range(5)]
    source.close()
    assert [f.error is None for f in frames] == [True, True, True, False, True]
    assert frames[4].image is not None and np.array_equal(frames[4].image, frames[0].image)  # from the start again
    assert source.reconnects == 1 and len(source.alarms) == 2
    assert "delivered no frame (disconnected?); reopening it" in source.alarms[0] and "delivers again" in source.alarms[1]
