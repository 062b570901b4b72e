"""PylonCameraSource against pylon's real camera emulator (PYLON_CAMEMU), fed from PNG files."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pypylon = pytest.importorskip("pypylon", reason="pypylon is not installed (pip install pypylon)")
from pypylon import pylon  # noqa: E402

from inspection.errors import ConfigError  # noqa: E402
from station.config import PylonSourceSettings  # noqa: E402
from station.shared_frames import NO_ROOM_FOR_FRAME, SharedFrames, SharedMemoryFull  # noqa: E402
from station.sources.base import SourceExhausted  # noqa: E402
from station.sources.pylon_camera import CameraLostError, PylonCameraSource  # noqa: E402
from helpers.pylon import emulator_present  # noqa: E402

WIDTH_PX, HEIGHT_PX = 64, 48
COLOUR_RGB = (200, 50, 0)


pytestmark = pytest.mark.skipif(not emulator_present(), reason="pylon's camera emulator transport layer is missing")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Two files in name order: a grey ramp, then a flat colour image (cv2 writes BGR)."""
    folder = tmp_path / "images"
    folder.mkdir()
    ramp = (np.arange(WIDTH_PX * HEIGHT_PX) % 251).astype(np.uint8).reshape(HEIGHT_PX, WIDTH_PX)
    cv2.imwrite(str(folder / "a_grey.png"), ramp)
    colour = np.zeros((HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    colour[:] = COLOUR_RGB[::-1]
    cv2.imwrite(str(folder / "b_colour.png"), colour)
    return folder


def _settings(folder: Path, **changes) -> PylonSourceSettings:
    return PylonSourceSettings(**{"kind": "pylon", "emulator_images": folder, "grab_timeout_ms": 1000, **changes})


@pytest.fixture
def opened():
    """Open sources through this so a failing test still releases the emulated camera."""
    sources: list[PylonCameraSource] = []

    def open_source(settings: PylonSourceSettings, frames: int | None = None, **options) -> PylonCameraSource:
        source = PylonCameraSource(settings, frames, **options)
        source.open()
        sources.append(source)
        return source

    yield open_source
    for source in sources:
        source.close()


@pytest.fixture(params=["own arrays", "shared memory"])
def frame_memory(request):
    """Where the source copies each grab: a new array (GetArray), or shared memory for preparer processes."""
    if request.param == "own arrays":
        yield None
        return
    shared = SharedFrames()
    yield shared
    shared.close()


def delivered_into(frame_memory: SharedFrames | None, image: np.ndarray) -> bool:
    return (frame_memory.locate(image) is not None) if frame_memory is not None else True


def test_mono8_frames_arrive_in_order_with_the_file_pixels(images, opened, frame_memory):
    source = opened(_settings(images), frames=4, shared_frames=frame_memory)
    assert source.paced is True
    assert source.description == "pylon camera Emulation 0815-0000 (emulated)"
    frames = [source.read() for _ in range(4)]
    with pytest.raises(SourceExhausted):
        source.read()
    assert [f.item_key for f in frames] == ["block-0", "block-1", "block-2", "block-3"]
    assert all(f.error is None and f.image.shape == (HEIGHT_PX, WIDTH_PX) and f.image.dtype == np.uint8 for f in frames)
    assert all(delivered_into(frame_memory, f.image) for f in frames)
    ramp = cv2.imread(str(images / "a_grey.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(frames[0].image, ramp) and np.array_equal(frames[2].image, ramp)
    # The emulator converts the colour file to grey for Mono8: flat, and neither channel's value.
    assert frames[1].image.min() == frames[1].image.max() not in COLOUR_RGB
    assert [f.trigger_time_s for f in frames] == sorted(f.trigger_time_s for f in frames)
    assert frames[0].captured_utc.endswith("Z")
    assert source.missed_frames == 0 and source.alarms == []


def test_a_grab_with_no_room_in_shared_memory_is_an_error_frame_with_its_block_and_trigger(images, opened, monkeypatch):
    shared = SharedFrames()
    try:
        source = opened(_settings(images), frames=3, shared_frames=shared)
        first = source.read()

        def full(image):
            raise SharedMemoryFull("cannot allocate 3,072 bytes of shared memory (No space left on device): free "
                                   "space in /dev/shm, or set batching.prepare_processes to 0")

        monkeypatch.setattr(shared, "copy_of", full)
        second = source.read()
        assert first.error is None and second.image is None and second.item_key == "block-1"
        assert second.error.startswith(NO_ROOM_FOR_FRAME) and "free space in /dev/shm" in second.error
        assert second.trigger_time_s >= first.trigger_time_s  # the grab's own trigger: the gate times its reject
    finally:
        shared.close()


@pytest.mark.parametrize("pixel_format", ["RGB8Packed", "BGR8Packed"])
def test_colour_formats_deliver_rgb(images, opened, pixel_format, frame_memory):
    source = opened(_settings(images), pixel_format=pixel_format, shared_frames=frame_memory)
    grey, colour = source.read().image, source.read().image
    assert delivered_into(frame_memory, grey) and delivered_into(frame_memory, colour)
    assert grey.shape == colour.shape == (HEIGHT_PX, WIDTH_PX, 3) and colour.dtype == np.uint8
    assert tuple(colour[0, 0]) == COLOUR_RGB
    ramp = cv2.imread(str(images / "a_grey.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(grey[:, :, 1], ramp)


def test_exposure_gain_rate_and_hardware_trigger_are_applied(images, opened):
    settings = _settings(images, exposure_us=2500, gain_db=6.0, frame_rate_hz=40.0, hardware_trigger=True,
                         trigger_line="Line2", grab_timeout_ms=50)
    source = opened(settings)
    nodes = source.camera.GetNodeMap()
    assert nodes.GetNode("ExposureTime").GetValue() == pytest.approx(2500)
    assert nodes.GetNode("ExposureAuto").GetValue() == "Off"
    assert nodes.GetNode("Gain").GetValue() == pytest.approx(6.0, abs=0.05)  # quantized through GainRaw
    assert nodes.GetNode("AcquisitionFrameRateEnable").GetValue() is True
    assert nodes.GetNode("AcquisitionFrameRate").GetValue() == pytest.approx(40.0)
    assert [nodes.GetNode(n).GetValue() for n in ("TriggerSelector", "TriggerMode", "TriggerSource",
                                                  "TriggerActivation")] == ["FrameStart", "On", "Line2", "RisingEdge"]
    assert nodes.GetNode("ImageFileMode").GetValue() == "On"
    assert nodes.GetNode("ImageFilename").GetValue() == str(images)
    # Nothing pulses Line2, so read() waits for an item; close() from another thread ends the wait.
    threading.Timer(0.3, source.close).start()
    started = time.monotonic()
    with pytest.raises(SourceExhausted):
        source.read()
    assert 0.25 < time.monotonic() - started < 2.0
    source.close()


def test_free_run_timeout_is_an_error_frame(images, opened):
    source = opened(_settings(images, frame_rate_hz=4.0, grab_timeout_ms=100))  # the emulator's first frame: 250 ms
    frame = source.read()
    assert frame.image is None and frame.error == "camera timeout: no frame within 100 ms"
    frames = [source.read() for _ in range(4)]
    assert "block-0" in [f.item_key for f in frames]  # then frames arrive as usual


def test_failed_buffers_become_error_frames(images, opened):
    source = opened(_settings(images))
    assert source.read().error is None
    source.camera.ForceFailedBufferCount.Value = 2
    source.camera.ForceFailedBuffer.Execute()
    frames = [source.read() for _ in range(4)]
    errors = [f.error for f in frames if f.error]
    assert len(errors) == 2 and all(e.startswith("grab failed: error 0x") for e in errors)
    assert all("incompletely grabbed" in e for e in errors)
    assert all(f.image is None for f in frames if f.error)
    assert [f.item_key for f in frames] == ["block-1", "block-2", "block-3", "block-4"]
    assert source.missed_frames == 0


def test_a_frame_the_source_never_saw_is_counted_and_alarmed(images, opened):
    source = opened(_settings(images))
    assert source.read().item_key == "block-0"
    stolen = source.camera.RetrieveResult(1000, pylon.TimeoutHandling_Return)  # as if the camera dropped it
    stolen.Release()
    assert source.read().item_key == "block-2"
    assert source.missed_frames == 1
    assert source.alarms == ["camera 0815-0000 skipped 1 frame(s) between block ids 0 and 2: those items were not imaged"]


def test_device_removal_reconnects_and_reapplies_the_config(images, opened):
    source = opened(_settings(images, exposure_us=3000, frame_rate_hz=50.0))
    assert source.read().error is None
    source.camera.FirePnPCallback.Execute()  # the emulator's way to report the device as removed
    lost = source.read()
    assert lost.image is None and lost.error == "camera disconnected: device removed"
    back = source.read()
    assert back.error is None and back.item_key == "r1-block-0"
    assert source.reconnects == 1
    assert source.camera.GetNodeMap().GetNode("ExposureTime").GetValue() == pytest.approx(3000)
    assert source.camera.GetNodeMap().GetNode("ImageFileMode").GetValue() == "On"
    assert source.missed_frames >= 5  # about 0.1 s of backoff at 50 Hz, estimated
    assert source.alarms[0] == "camera 0815-0000 disconnected (device removed); reconnecting"
    assert source.alarms[1].startswith("camera 0815-0000 reconnected after ")


def test_runtime_exception_from_retrieve_reconnects(images, opened, monkeypatch):
    source = opened(_settings(images))
    real_retrieve = pylon.InstantCamera.RetrieveResult
    calls = {"n": 0}

    def flaky_retrieve(camera, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise pylon.RuntimeException("simulated cable pull")
        return real_retrieve(camera, *args)

    monkeypatch.setattr(pylon.InstantCamera, "RetrieveResult", flaky_retrieve)
    lost = source.read()
    assert lost.image is None and lost.error.startswith("camera disconnected: RuntimeException")
    assert source.read().item_key == "r1-block-0"
    assert source.reconnects == 1 and "unknown number of items" in source.alarms[-1]


def test_a_camera_that_stays_away_stops_the_station(images, opened, monkeypatch):
    source = opened(_settings(images), reconnect_max_wait_s=0.5)
    source.camera.FirePnPCallback.Execute()
    monkeypatch.setenv("PYLON_CAMEMU", "0")  # the emulated camera disappears from enumeration
    errors = []
    with pytest.raises(CameraLostError, match="stayed disconnected for more than 0.5 s"):
        for _ in range(20):
            errors.append(source.read().error)
    assert errors[0] == "camera disconnected: device removed"
    assert len(errors) >= 3 and all(e.startswith("camera disconnected; reconnect failed: no pylon camera") for e in errors[1:])
    assert source.reconnects == 0
    with pytest.raises(SourceExhausted):
        source.read()


def test_open_enables_the_emulator_after_pylon_was_already_used(images, opened, monkeypatch):
    monkeypatch.delenv("PYLON_CAMEMU")
    wanted = pylon.DeviceInfo()
    wanted.SetDeviceClass("BaslerCamEmu")
    assert len(pylon.TlFactory.GetInstance().EnumerateDevices([wanted])) == 0
    source = opened(_settings(images))
    assert os.environ["PYLON_CAMEMU"] == "1" and source.read().error is None


def test_wrong_serial_is_one_line_config_error(images):
    source = PylonCameraSource(_settings(images, serial="nope-123"))
    with pytest.raises(ConfigError) as caught:
        source.open()
    message = str(caught.value)
    assert "\n" not in message and "with serial nope-123" in message and "source.serial" in message
    source.close()


@pytest.mark.parametrize(("changes", "expected"), [
    ({"trigger_line": "Line9", "hardware_trigger": True}, "does not offer TriggerSource=Line9"),
    ({"exposure_us": 1e9}, "ExposureTime=1e+09 is outside camera Emulation's range"),
])
def test_settings_the_camera_cannot_take_are_config_errors(images, changes, expected):
    source = PylonCameraSource(_settings(images, **changes))
    with pytest.raises(ConfigError, match=re.escape(expected)):
        source.open()
    assert source.camera is None  # the camera was released, not left open
    source.close()


def test_emulator_folder_without_images_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not an image file or a folder of"):
        PylonCameraSource(_settings(tmp_path)).open()


def test_close_twice_and_before_open_is_fine(images):
    source = PylonCameraSource(_settings(images))
    source.close()
    with pytest.raises(SourceExhausted):
        source.read()
    source.open()
    assert source.read().error is None
    source.close()
    source.close()
    assert source.camera is None
