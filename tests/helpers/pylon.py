"""Whether pylon's camera emulator (PYLON_CAMEMU) is available, for the tests that need it."""

from __future__ import annotations

import os


def emulator_present() -> bool:
    from pypylon import pylon

    if os.environ.get("PYLON_CAMEMU", "0") in ("", "0"):  # as PylonCameraSource.open() does
        os.environ["PYLON_CAMEMU"] = "1"
    wanted = pylon.DeviceInfo()
    wanted.SetDeviceClass("BaslerCamEmu")
    return len(pylon.TlFactory.GetInstance().EnumerateDevices([wanted])) > 0
