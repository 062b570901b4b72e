"""The backend Protocol and its registry.

Every backend takes the model-input batch that `inspection.preprocess.to_model_input` produces and
returns class probabilities as float32 (N, C). `infer_images` takes the prepared images of a model
that reads uint8 NHWC (every bundle's default) as a list, not stacked: a GPU backend copies them
into its pinned memory once, where stacking first would copy each twice (see backends/staging.py).
Backend modules are imported only when opened, so importing `inspection` never loads torch,
TensorRT or ONNX Runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from inspection.errors import ConfigError

if TYPE_CHECKING:
    from inspection.bundle import Bundle


class BackendKind(StrEnum):
    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"
    TENSORRT = "tensorrt"


class Backend(Protocol):
    kind: BackendKind
    description: str  # what actually runs, e.g. "onnxruntime 1.20 CPUExecutionProvider, 2 threads"

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def infer_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...  # = infer(np.stack(images))

    def close(self) -> None: ...


# kind -> "module:factory"; the factory is `open(bundle, **options) -> Backend`.
BACKENDS: dict[BackendKind, str] = {
    BackendKind.ONNXRUNTIME: "inspection.backends.onnxruntime_backend:open_onnxruntime",
    BackendKind.TORCH: "inspection.backends.torch_backend:open_torch",
    BackendKind.TENSORRT: "inspection.backends.tensorrt_backend:open_tensorrt",
}


def open_backend(kind: str, bundle: "Bundle", **options: Any) -> Backend:
    try:
        backend_kind = BackendKind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in BackendKind)
        raise ConfigError(f"unknown backend '{kind}'; valid backends are: {valid}.") from None
    module_name, _, factory_name = BACKENDS[backend_kind].partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(bundle, **options)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
