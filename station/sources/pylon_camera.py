"""GenICam cameras through Basler pylon (pypylon), including pylon's camera emulator for tests and demos.

Every frame is taken in order (GrabStrategy_OneByOne): 100% inspection never skips to the latest image.
Frames the camera itself skipped show up as a jump in block ids; they are counted in `missed_frames`
and reported in `alarms`, which the station reads, so a missed item is never a silent pass.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from inspection.errors import ConfigError, CorruptImageError, InspectionError, first_line
from inspection.image_io import is_image_path, to_canonical_image
from station.archive.records import utc_now_iso
from station.config import PylonSourceSettings
from station.shared_frames import NO_ROOM_FOR_FRAME, SharedFrames, SharedMemoryFull
from station.sources.base import Frame, SourceExhausted

try:
    from pypylon import genicam, pylon
except ImportError:  # the station still runs other sources without pypylon
    genicam = pylon = None

EMULATOR_DEVICE_CLASS = "BaslerCamEmu"
BUFFER_COUNT = 16  # enough to ride out a slow batch at line rate without the camera dropping frames
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
MONO_FORMATS = ("Mono8",)
COLOUR_FORMATS = ("RGB8", "RGB8Packed", "BGR8", "BGR8Packed")  # SFNC names first, then older GigE names


class CameraLostError(InspectionError):
    """The camera stayed disconnected longer than the reconnect limit: the line must stop."""


class PylonCameraSource:
    """One pylon camera, configured from the station config every time it (re)connects."""

    paced = True
    fixed_resolution = True

    def __init__(self, settings: PylonSourceSettings, frames: int | None = None,
                 shared_frames: SharedFrames | None = None, *,
                 pixel_format: str | None = None, reconnect_max_wait_s: float = 10.0) -> None:
        """`shared_frames`: copy each grab into shared memory (instead of a new array), for preparer processes."""
        self._settings = settings
        self._shared_frames = shared_frames
        self._frames = frames
        self._pixel_format = pixel_format  # None: keep the camera's 8-bit format, else Mono8 or RGB8
        self._reconnect_max_wait_s = reconnect_max_wait_s
        self._camera = None
        self._closed = True  # until open(): read() before open() has nothing to deliver
        self._lock = threading.Lock()  # close() from another thread waits until read() lets go of the camera
        self._delivered = 0
        self._last_block_id: int | None = None
        self._lost_at_s: float | None = None
        self._next_attempt_s = 0.0
        self._backoff_s = FIRST_BACKOFF_S
        self.reconnects = 0
        self.missed_frames = 0
        self.alarms: list[str] = []
        self.model = ""
        self.serial = settings.serial or ""
        self.description = f"pylon camera {settings.serial or '(first found)'}"

    @property
    def camera(self):
        """The open pylon InstantCamera (None while disconnected or closed): for diagnostics and tests."""
        return self._camera

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if pylon is None:
            raise ConfigError("source kind 'pylon' needs pypylon, which is not installed. Run: pip install pypylon")
        images = self._settings.emulator_images
        if images is not None:
            if not (images.is_dir() and any(is_image_path(p) for p in images.iterdir())) and not is_image_path(images):
                raise ConfigError(f"emulator_images {images} is not an image file or a folder of PNG/BMP/TIFF/JPEG "
                                  "images. Point it at a folder of images.")
            # The emulator transport layer exists only when PYLON_CAMEMU >= 1. pylon 12 reads it at each
            # enumeration, so setting it here works even after pypylon was imported; older pylon versions
            # read it once at the first TlFactory use, so there it must be set before that (see docs/cameras.md).
            if os.environ.get("PYLON_CAMEMU", "0") in ("", "0"):  # keep a larger count someone set
                os.environ["PYLON_CAMEMU"] = "1"
        self._closed = False
        try:
            self._connect()
        except genicam.GenericException as exc:  # e.g. pylon Viewer or another station holds the camera
            raise ConfigError(f"cannot open pylon camera {self._settings.serial or '(first found)'}: "
                              f"{first_line(exc)}. Close other programs that use it and check its cable.") from None

    def close(self) -> None:
        """Safe twice and from another thread: a hardware-triggered read() waiting on an idle line ends
        within grab_timeout_ms with SourceExhausted."""
        self._closed = True
        with self._lock:
            self._disconnect()

    def _connect(self) -> None:
        factory = pylon.TlFactory.GetInstance()
        wanted = pylon.DeviceInfo()
        if self._settings.emulator_images is not None:
            wanted.SetDeviceClass(EMULATOR_DEVICE_CLASS)  # also skips the 0.25 s GigE discovery
        if self._settings.serial:
            wanted.SetSerialNumber(self._settings.serial)
        devices = factory.EnumerateDevices([wanted])
        if not devices:
            serial = f"with serial {self._settings.serial}" if self._settings.serial else "at all"
            emulated = " (emulator: PYLON_CAMEMU must be set before the process first uses pylon)" \
                if self._settings.emulator_images is not None else ""
            raise ConfigError(f"no pylon camera found {serial}{emulated}. Check cable, power and the serial in "
                              "the station config (source.serial; null takes the first camera).")
        camera = pylon.InstantCamera(factory.CreateDevice(devices[0]))
        self._camera = camera  # set before Open so that a failed open is still destroyed by _disconnect
        try:
            camera.Open()
        except genicam.GenericException:
            self._disconnect()
            raise
        info = camera.GetDeviceInfo()
        self.model, self.serial = info.GetModelName(), info.GetSerialNumber()
        emulated = " (emulated)" if info.GetDeviceClass() == EMULATOR_DEVICE_CLASS else ""
        self.description = f"pylon camera {self.model} {self.serial}{emulated}"
        try:
            self._configure(camera.GetNodeMap())
        except Exception:
            self._disconnect()
            raise
        camera.MaxNumBuffer.Value = BUFFER_COUNT
        camera.StartGrabbing(pylon.GrabStrategy_OneByOne)
        self._last_block_id = None  # block ids restart with every grab session

    def _disconnect(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:  # a removed device may throw on every call; closing must still finish
            camera.StopGrabbing()
            camera.Close()
        except genicam.GenericException:
            pass
        camera.DestroyDevice()

    # ------------------------------------------------------------------ configuration

    def _configure(self, nodes) -> None:
        s = self._settings
        self._set(nodes, ("PixelFormat",), self._choose_pixel_format(nodes))
        if s.emulator_images is not None:
            if self._has(nodes, "TestImageSelector"):
                self._set(nodes, ("TestImageSelector",), "Off")
            self._set(nodes, ("ImageFileMode",), "On")
            self._set(nodes, ("ImageFilename",), str(s.emulator_images))
        if s.exposure_us is not None:
            if self._has(nodes, "ExposureAuto"):  # auto exposure would overwrite the validated value
                self._set(nodes, ("ExposureAuto",), "Off")
            self._set(nodes, ("ExposureTime", "ExposureTimeAbs"), float(s.exposure_us))
        if s.gain_db is not None:
            if self._has(nodes, "GainAuto"):
                self._set(nodes, ("GainAuto",), "Off")
            if not self._has(nodes, "Gain") and not self._has(nodes, "GainAbs") and self._has(nodes, "GainRaw"):
                # GainRaw is in device units, not dB: writing gain_db there would be a silent wrong setting.
                raise ConfigError(f"camera {self.model} offers only GainRaw (device units), not Gain in dB. Remove "
                                  "gain_db and set the gain in the camera's user set with pylon Viewer.")
            self._set(nodes, ("Gain", "GainAbs"), float(s.gain_db))
        if s.frame_rate_hz is not None:
            self._set(nodes, ("AcquisitionFrameRateEnable",), True)
            self._set(nodes, ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), float(s.frame_rate_hz))
        self._set(nodes, ("TriggerSelector",), "FrameStart")
        if s.hardware_trigger:
            self._set(nodes, ("TriggerMode",), "On")
            self._set(nodes, ("TriggerSource",), s.trigger_line)
            self._set(nodes, ("TriggerActivation",), "RisingEdge")
        else:  # free run, even when the camera's saved user set says otherwise
            self._set(nodes, ("TriggerMode",), "Off")

    def _choose_pixel_format(self, nodes) -> str:
        if self._pixel_format is not None:
            return self._pixel_format
        _, node = self._node(nodes, ("PixelFormat",))
        available, current = set(node.GetSymbolics()), node.GetValue()
        if current in MONO_FORMATS + COLOUR_FORMATS:
            return current  # what the integrator saved in the camera's user set
        if not current.startswith("Mono"):  # Bayer, YUV, 10/12-bit colour: let the camera debayer
            for name in COLOUR_FORMATS:
                if name in available:
                    return name
        return "Mono8"

    @staticmethod
    def _has(nodes, name: str) -> bool:
        node = nodes.GetNode(name)
        return node is not None and genicam.IsAvailable(node)

    def _node(self, nodes, names: tuple[str, ...]):
        for name in names:
            if self._has(nodes, name):
                return name, nodes.GetNode(name)
        raise ConfigError(f"camera {self.model} {self.serial} has no GenICam node {' or '.join(names)}. "
                          "Remove that setting from the station config or use a camera that supports it.")

    def _set(self, nodes, names: tuple[str, ...], value) -> None:
        name, node = self._node(nodes, names)
        if not genicam.IsWritable(node):
            raise ConfigError(f"GenICam node {name} of camera {self.model} is not writable now. "
                              "Check that no other program holds the camera.")
        if hasattr(node, "GetSymbolics") and value not in node.GetSymbolics():
            raise ConfigError(f"camera {self.model} does not offer {name}={value}; it offers "
                              f"{', '.join(node.GetSymbolics())}. Pick one of those in the station config.")
        if isinstance(value, float) and not node.GetMin() <= value <= node.GetMax():
            raise ConfigError(f"{name}={value:g} is outside camera {self.model}'s range "
                              f"{node.GetMin():g}..{node.GetMax():g}. Set a value inside it.")
        node.SetValue(value)

    # ------------------------------------------------------------------ frames

    def read(self) -> Frame:
        with self._lock:
            if self._closed or (self._frames is not None and self._delivered >= self._frames):
                raise SourceExhausted
            frame = self._reconnect() if self._camera is None else None
            if frame is None:
                frame = self._grab()
            self._delivered += 1
            return frame

    def _grab(self) -> Frame:
        timeout_ms = self._settings.grab_timeout_ms
        while True:
            try:
                if self._camera.IsCameraDeviceRemoved():
                    return self._lose("device removed")
                result = self._camera.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
            except genicam.GenericException as exc:  # RuntimeException on a pulled cable, and friends
                return self._lose(f"{type(exc).__name__}: {first_line(exc)}")
            trigger_s, captured = time.monotonic(), utc_now_iso()
            if result.IsValid():
                break
            if not self._settings.hardware_trigger:
                # Free run must deliver a frame every period: a timeout is a camera problem, fault it.
                return Frame(f"timeout-{self._delivered + 1}", None, trigger_s, captured,
                             error=f"camera timeout: no frame within {timeout_ms} ms")
            if self._closed:  # hardware trigger and an idle line: wait for the next item unless closed
                raise SourceExhausted
        try:
            block_id = result.GetBlockID()
            key = f"block-{block_id}" if self.reconnects == 0 else f"r{self.reconnects}-block-{block_id}"
            self._count_skipped(block_id)
            if not result.GrabSucceeded():
                return Frame(key, None, trigger_s, captured,
                             error=f"grab failed: error 0x{result.GetErrorCode():X} {result.GetErrorDescription()}")
            image, error = _canonical(result, key, self._shared_frames)
        finally:
            result.Release()  # give the buffer back to the camera at once
        return Frame(key, image, trigger_s, captured, error=error)

    def _count_skipped(self, block_id: int) -> None:
        last, self._last_block_id = self._last_block_id, block_id
        # A smaller id is a wrap (16-bit GigE block ids) or a restart, not a gap we can size.
        if last is not None and block_id > last + 1:
            skipped = block_id - last - 1
            self.missed_frames += skipped
            self.alarms.append(f"camera {self.serial} skipped {skipped} frame(s) between block ids {last} and "
                               f"{block_id}: those items were not imaged")

    # ------------------------------------------------------------------ disconnects

    def _lose(self, reason: str) -> Frame:
        self._disconnect()
        now = time.monotonic()
        self._lost_at_s, self._backoff_s, self._next_attempt_s = now, FIRST_BACKOFF_S, now + FIRST_BACKOFF_S
        self.alarms.append(f"camera {self.serial} disconnected ({reason}); reconnecting")
        return Frame(f"disconnected-{self._delivered + 1}", None, now, utc_now_iso(),
                     error=f"camera disconnected: {reason}")

    def _reconnect(self) -> Frame | None:
        """One reconnect attempt after the backoff; None when the camera is back, else an error frame."""
        if time.monotonic() - self._lost_at_s > self._reconnect_max_wait_s:
            self._closed = True
            raise CameraLostError(f"camera {self.serial} stayed disconnected for more than "
                                  f"{self._reconnect_max_wait_s:g} s. Check its cable and power, then restart the station.")
        time.sleep(max(0.0, self._next_attempt_s - time.monotonic()))
        try:
            self._connect()
        except (ConfigError, genicam.GenericException) as exc:
            self._disconnect()
            self._backoff_s = min(2 * self._backoff_s, MAX_BACKOFF_S)
            self._next_attempt_s = time.monotonic() + self._backoff_s
            return Frame(f"disconnected-{self._delivered + 1}", None, time.monotonic(), utc_now_iso(),
                         error=f"camera disconnected; reconnect failed: {first_line(exc)}")
        outage_s = time.monotonic() - self._lost_at_s
        self.reconnects += 1
        if self._settings.frame_rate_hz is not None and not self._settings.hardware_trigger:
            missed = int(outage_s * self._settings.frame_rate_hz)  # free run at a known rate: an estimate
            self.missed_frames += missed
            lost = f"about {missed} frame(s)"
        else:
            lost = "an unknown number of items (compare the PLC's trigger count)"
        self.alarms.append(f"camera {self.serial} reconnected after {outage_s:.1f} s; {lost} were not imaged")
        return None


def _canonical(result, key: str, shared_frames: SharedFrames | None) -> tuple[np.ndarray | None, str | None]:
    """Grey for Mono8, RGB for the colour formats, copied out of the driver's buffer so that it can be
    released: by GetArray, or into shared memory (one copy either way)."""
    pixel_type = result.GetPixelType()
    if pixel_type not in (pylon.PixelType_Mono8, pylon.PixelType_RGB8packed, pylon.PixelType_BGR8packed):
        return None, f"camera delivered pixel type 0x{pixel_type:X}; expected Mono8, RGB8 or BGR8"
    try:
        bgr = pixel_type == pylon.PixelType_BGR8packed
        if shared_frames is None:
            return to_canonical_image(result.GetArray(), key, bgr=bgr), None
        with result.GetArrayZeroCopy() as driver_buffer:
            return shared_frames.copy_of(to_canonical_image(driver_buffer, key, bgr=bgr)), None
    except CorruptImageError as exc:
        return None, str(exc)
    except SharedMemoryFull as exc:
        return None, f"{NO_ROOM_FOR_FRAME}: {exc}"
