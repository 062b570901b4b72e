"""TensorRT backend: runs an engine the bundle holds, built ahead of time by `inspection export --tensorrt`.

Written against TensorRT 10's documented Python API and never run here: TensorRT cannot be
installed on our development or benchmark machines (README, "GPU path"). I/O buffers are torch CUDA
tensors (no pycuda); tensor addresses are set by name; `execute_async_v3` runs on the backend's own
stream; host input goes through pinned memory (copied by several threads when large, the station's
images straight from the preparers' buffers, see staging.py); every TensorRT call's result is
checked. An engine built for another GPU or TensorRT version is refused with the command that
rebuilds it: engines are never built silently on the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inspection.backends.base import BackendKind
from inspection.backends.staging import StagingCopier
from inspection.bundle import Bundle, EngineEntry
from inspection.errors import BackendError, BackendUnavailableError

WARMUP_RUNS = 3


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed (pip install 'inspection[tensorrt]' with NVIDIA's package index). "
            "Use the torch or onnxruntime backend."
        ) from None
    return tensorrt


def current_gpu(torch: Any) -> tuple[str, str]:
    props = torch.cuda.get_device_properties(0)
    return props.name, f"{props.major}.{props.minor}"


def matching_engine(bundle: Bundle, precision: str, gpu_name: str, compute_capability: str, trt_version: str) -> EngineEntry:
    """The bundle's engine for this GPU, TensorRT version and precision, or an error saying how to rebuild."""
    rebuild = _rebuild_hint(bundle, precision)
    candidates = [e for e in bundle.meta.engines if e.precision == precision]
    if not candidates:
        raise BackendUnavailableError(f"bundle {bundle.path} has no {precision} TensorRT engine. {rebuild}")
    for engine in candidates:
        if (engine.gpu_name, engine.compute_capability, engine.tensorrt_version) == (gpu_name, compute_capability, trt_version):
            return engine
    built = "; ".join(f"{e.file}: {e.gpu_name} sm {e.compute_capability}, TensorRT {e.tensorrt_version}" for e in candidates)
    raise BackendUnavailableError(
        f"bundle {bundle.path} has {precision} engines only for other GPUs or TensorRT versions ({built}); this is "
        f"{gpu_name} sm {compute_capability} with TensorRT {trt_version}. {rebuild}"
    )


class TensorRtBackend:
    kind = BackendKind.TENSORRT

    def __init__(self, bundle: Bundle, device: str = "cuda", threads: int | None = None, precision: str = "fp16",
                 max_batch: int | None = None) -> None:
        trt = import_tensorrt()
        import torch

        if device != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailableError("the TensorRT backend needs device 'cuda' and a GPU that torch can see.")
        gpu_name, capability = current_gpu(torch)
        entry = matching_engine(bundle, precision, gpu_name, capability, trt.__version__)
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine_path = bundle.path / entry.file
        self._engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise BackendError(f"TensorRT could not deserialize {engine_path}. {_rebuild_hint(bundle, precision)}")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"TensorRT could not create an execution context for {engine_path} (GPU memory?).")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f"{engine_path} has inputs {inputs} and outputs {outputs}; expected one of each. Rebuild it.")
        self._input, self._output = inputs[0], outputs[0]
        self._torch = torch
        self.max_batch = min(max_batch or entry.max_batch, entry.max_batch)
        spec = bundle.meta.input
        self._frame_shape = (spec.size_px, spec.size_px, spec.channels)
        self._classes = len(bundle.meta.class_names)
        self._stream = torch.cuda.Stream()
        self._host_in = torch.empty((self.max_batch, *self._frame_shape), dtype=torch.uint8, pin_memory=True)
        self._device_in = torch.empty((self.max_batch, *self._frame_shape), dtype=torch.uint8, device="cuda")
        self._device_out = torch.empty((self.max_batch, self._classes), dtype=torch.float32, device="cuda")
        self._host_out = torch.empty((self.max_batch, self._classes), dtype=torch.float32, pin_memory=True)
        self._check(self._context.set_tensor_address(self._input, self._device_in.data_ptr()), "set_tensor_address(input)")
        self._check(self._context.set_tensor_address(self._output, self._device_out.data_ptr()), "set_tensor_address(output)")
        self._staging = StagingCopier()
        try:
            for _ in range(WARMUP_RUNS):
                self.infer(np.zeros((self.max_batch, *self._frame_shape), dtype=np.uint8))
        except BaseException:
            self._staging.close()  # a backend that failed to open leaves no copy threads behind
            raise
        self.description = f"TensorRT {trt.__version__} {precision} engine {entry.file}, max batch {self.max_batch}"

    @staticmethod
    def _check(ok: bool, what: str) -> None:
        if not ok:
            raise BackendError(f"TensorRT {what} failed. Rebuild the engine with `inspection export --tensorrt`.")

    def infer(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities for a batch: one array, or a list of images copied into pinned memory one by one."""
        chunks = [batch[i : i + self.max_batch] for i in range(0, len(batch), self.max_batch)]
        return np.concatenate([self._infer_chunk(chunk) for chunk in chunks])

    def infer_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.infer(images)

    def _infer_chunk(self, chunk: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        torch, rows = self._torch, len(chunk)
        self._staging.copy(self._host_in[:rows].numpy(), chunk)
        self._check(self._context.set_input_shape(self._input, (rows, *self._frame_shape)), f"set_input_shape({rows})")
        with torch.cuda.stream(self._stream):
            self._device_in[:rows].copy_(self._host_in[:rows], non_blocking=True)
            self._check(self._context.execute_async_v3(self._stream.cuda_stream), "execute_async_v3")
            self._host_out[:rows].copy_(self._device_out[:rows], non_blocking=True)
        self._stream.synchronize()
        return self._host_out[:rows].numpy().copy()

    def close(self) -> None:
        self._staging.close()
        self._context = None
        self._engine = None


def _rebuild_hint(bundle: Bundle, precision: str) -> str:
    return f"Rebuild it: inspection export {bundle.path} --tensorrt --precision {precision}"


def open_tensorrt(bundle: Bundle, device: str = "cuda", threads: int | None = None, precision: str = "fp16",
                  max_batch: int | None = None) -> TensorRtBackend:
    return TensorRtBackend(bundle, device=device, threads=threads, precision=precision, max_batch=max_batch)
