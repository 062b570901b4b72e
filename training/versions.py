"""Tool and library versions recorded in every bundle and benchmark result."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("inspection", "torch", "torchvision", "onnx", "onnxruntime", "albumentations", "opencv-python-headless", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores"
