"""torch backend: the bundle's architecture rebuilt from torchvision with weights.safetensors.

CPU or CUDA; fp16 only on CUDA (asking for fp16 on the CPU is an error, not a silent fp32);
channels_last; on CUDA the uint8 batch is copied through pinned memory and normalised on the GPU.
"""

from __future__ import annotations

import numpy as np

from inspection.backends.base import BackendKind
from inspection.bundle import Bundle
from inspection.errors import BackendError, BackendUnavailableError
from inspection.input_spec import InputLayout

PRECISIONS = ("fp32", "fp16")


class TorchBackend:
    kind = BackendKind.TORCH

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32") -> None:
        import torch
        import torchvision
        from safetensors.torch import load_file

        from inspection.backends.torch_model import InspectionClassifier, WithSoftmax

        meta = bundle.meta
        if bundle.weights_path is None or meta.architecture is None or meta.input.layout != InputLayout.NHWC_UINT8:
            raise BackendError(
                f"bundle {bundle.path} has no torch weights (weights.safetensors and an architecture); "
                "it was imported from ONNX. Use the onnxruntime backend."
            )
        if precision not in PRECISIONS:
            raise BackendUnavailableError(f"torch precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}.")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch backend: device 'cuda' was asked for but torch sees no CUDA GPU. Use device 'cpu'.")
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailableError("torch backend: fp16 needs device 'cuda'; on the CPU use fp32.")
        if threads is not None:
            torch.set_num_threads(threads)
        backbone = torchvision.models.get_model(meta.architecture, weights=None, num_classes=len(meta.class_names))
        try:
            backbone.load_state_dict(load_file(str(bundle.weights_path)))
        except (RuntimeError, OSError) as exc:
            raise BackendError(f"{bundle.weights_path} does not fit {meta.architecture}: {exc}. Re-create the bundle.") from None
        dtype = torch.float16 if precision == "fp16" else torch.float32
        model = WithSoftmax(InspectionClassifier(backbone, meta.input)).eval()
        self._model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
        self._torch, self._device = torch, torch.device(device)
        self.description = f"torch {torch.__version__} {device} {precision}, channels_last"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            images = torch.from_numpy(batch)
            if self._device.type == "cuda":
                images = images.pin_memory().to(self._device, non_blocking=True)
            return self._model(images).float().cpu().numpy()

    def close(self) -> None:
        self._model = None


def open_torch(bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32") -> TorchBackend:
    return TorchBackend(bundle, device=device, threads=threads, precision=precision)
