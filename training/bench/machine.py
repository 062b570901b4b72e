"""The machine a benchmark ran on: CPU, GPU, driver and library versions, named in every result."""

from __future__ import annotations

import re
import subprocess

from training.versions import library_versions, machine_description


def gpu_description() -> dict:
    try:
        import torch
    except ImportError:
        return {"gpu": None}
    if not torch.cuda.is_available():
        return {"gpu": None}
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()),
        "driver": _nvidia_driver(),
    }


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def machine_record() -> dict:
    return dict({"cpu": machine_description(), "tensorrt": tensorrt_version(), "versions": library_versions()}, **gpu_description())


def machine_slug(record: dict) -> str:
    """A file-name-safe short name: the GPU when there is one, else the CPU and its core count."""
    name = record["gpu"] or record["cpu"]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
