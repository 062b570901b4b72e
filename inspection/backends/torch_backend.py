"""torch backend: the bundle's architecture rebuilt from torchvision with weights.safetensors.

CPU or CUDA; fp16 only on CUDA (asking for fp16 on the CPU is an error, not a silent fp32);
channels_last; BatchNorm folded into the convolutions for inference. On CUDA, batches run through
captured CUDA graphs (one per batch size up to `max_batch`) with pinned, double-buffered uint8
uploads and normalisation on the GPU (see cuda_graphs.py); `cuda_graphs=False` runs eagerly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from inspection.backends.base import BackendKind
from inspection.bundle import Bundle
from inspection.errors import BackendError, BackendUnavailableError
from inspection.input_spec import InputLayout

PRECISIONS = ("fp32", "fp16")
DEFAULT_MAX_BATCH = 64


def fold_batchnorm(backbone: Any) -> tuple[Any, bool]:
    """Conv+BatchNorm pairs folded into one convolution (eval only): fewer kernels, same maths.

    Returns the module and whether folding happened; a backbone that torch.fx cannot trace runs unfolded.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(backbone.eval()), True
    except Exception:  # torch.fx raises many kinds of tracing errors; the unfolded model is exact
        return backbone, False


def load_backbone(bundle: Bundle) -> Any:
    """The bundle's torchvision architecture with its weights.safetensors (refused for an imported bundle)."""
    import torchvision
    from safetensors.torch import load_file

    meta = bundle.meta
    if bundle.weights_path is None or meta.architecture is None or meta.input.layout != InputLayout.NHWC_UINT8:
        raise BackendError(
            f"bundle {bundle.path} has no torch weights (weights.safetensors and an architecture); "
            "it was imported from ONNX. Use the onnxruntime backend."
        )
    backbone = torchvision.models.get_model(meta.architecture, weights=None, num_classes=len(meta.class_names))
    try:
        backbone.load_state_dict(load_file(str(bundle.weights_path)))
    except (RuntimeError, OSError) as exc:
        raise BackendError(f"{bundle.weights_path} does not fit {meta.architecture}: {exc}. Re-create the bundle.") from None
    return backbone


class TorchBackend:
    kind = BackendKind.TORCH

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                 max_batch: int = DEFAULT_MAX_BATCH, cuda_graphs: bool = True) -> None:
        import torch

        from inspection.backends.torch_model import InspectionClassifier, WithSoftmax

        meta = bundle.meta
        backbone = load_backbone(bundle)
        if precision not in PRECISIONS:
            raise BackendUnavailableError(f"torch precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}.")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch backend: device 'cuda' was asked for but torch sees no CUDA GPU. Use device 'cpu'.")
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailableError("torch backend: fp16 needs device 'cuda'; on the CPU use fp32.")
        if threads is not None:
            torch.set_num_threads(threads)
        if device == "cuda":
            # cuDNN times its algorithms for each input shape on the first run (the warm-up before
            # graph capture) instead of guessing from heuristics; the choice is fixed for the process.
            torch.backends.cudnn.benchmark = True
        if device == "cuda" and precision == "fp32":
            # cuDNN convolutions default to TF32 on Ampere and newer: fp32 asked means fp32 computed.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        backbone, folded = fold_batchnorm(backbone)
        dtype = torch.float16 if precision == "fp16" else torch.float32
        model = WithSoftmax(InspectionClassifier(backbone, meta.input), meta.orientation_average).eval()
        self._model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
        self._torch, self._device = torch, torch.device(device)
        self._graphs = None
        if device == "cuda" and cuda_graphs:
            from inspection.backends.cuda_graphs import CudaGraphRunner

            spec = meta.input
            self._graphs = CudaGraphRunner(torch, self._model, (spec.size_px, spec.size_px, spec.channels),
                                           len(meta.class_names), max_batch)
        features = ["channels_last", "batchnorm folded" if folded else "batchnorm not folded (not traceable)"]
        if device == "cuda":
            features.append("cuDNN autotuned")
        if self._graphs is not None:
            features.append(f"CUDA graphs for batch {','.join(map(str, self._graphs.batch_sizes))}")
        self.description = f"torch {torch.__version__} {device} {precision}, {', '.join(features)}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._graphs is not None:
            return self._graphs.infer(batch)
        torch = self._torch
        with torch.inference_mode():
            images = torch.from_numpy(batch)
            if self._device.type == "cuda":
                images = images.pin_memory().to(self._device, non_blocking=True)
            return self._model(images).float().cpu().numpy()

    def infer_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if self._graphs is not None:  # copied into the graphs' pinned memory one by one, not stacked first
            return self._graphs.infer(images)
        return self.infer(np.stack(images))

    def infer_stream(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Probabilities per batch, in order; with CUDA graphs, uploads overlap the previous batch's compute."""
        if self._graphs is not None:
            yield from self._graphs.infer_stream(batches)
        else:
            for batch in batches:
                yield self.infer(batch)

    def replay_images_per_s(self, rows: int, seconds: float) -> float | None:
        """With CUDA graphs: throughput on GPU-resident data (no uploads), for benchmarks; else None."""
        return None if self._graphs is None else self._graphs.replay_images_per_s(rows, seconds)

    def close(self) -> None:
        if self._graphs is not None:
            self._graphs.close()
        self._model = None
        self._graphs = None


def open_torch(bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
               max_batch: int = DEFAULT_MAX_BATCH, cuda_graphs: bool = True) -> TorchBackend:
    return TorchBackend(bundle, device=device, threads=threads, precision=precision, max_batch=max_batch, cuda_graphs=cuda_graphs)
