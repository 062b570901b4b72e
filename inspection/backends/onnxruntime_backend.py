"""ONNX Runtime backend (CPU; CUDA execution provider when asked and present).

precision fp32 runs model.onnx; int8 runs the bundle's Q/DQ model.int8.onnx (`inspection export
--precision int8`), on the CPU with its wide convolutions routed to the int8 GEMM kernel
(int8_conv_kernels.py; the same arithmetic). A precision the bundle lacks is an error, never a silent fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from inspection.backends.base import BackendKind, softmax
from inspection.backends.int8_conv_kernels import route_wide_convolutions_to_gemm
from inspection.bundle import Bundle, OutputKind
from inspection.errors import BackendError, BackendUnavailableError, BundleError, first_line


class OnnxRuntimeBackend:
    kind = BackendKind.ONNXRUNTIME

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                 int8_path: Path | None = None, spin_wait: bool = True) -> None:
        import onnxruntime as ort

        model_path = _model_for(bundle, precision, int8_path)

        providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
        if device not in providers:
            raise BackendUnavailableError(f"onnxruntime device '{device}' is unknown; use 'cpu' or 'cuda'.")
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailableError(
                "onnxruntime has no CUDAExecutionProvider on this machine. Install onnxruntime-gpu or use device 'cpu'."
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ONNX Runtime's worker threads spin between calls by default: fastest alone, but at a station
        # they take the cores that capture and the reject gate need (spin_wait=False there).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
        routed = ""
        try:
            model: str | bytes = str(model_path)
            if precision == "int8" and device == "cpu":
                proto = onnx.load(str(model_path))
                routed = f", {route_wide_convolutions_to_gemm(proto)} wide convolutions on the int8 GEMM"
                model = proto.SerializeToString()
            self._session = ort.InferenceSession(model, options, providers=providers[device])
        except Exception as exc:  # onnxruntime and onnx raise their own untyped errors
            raise BackendError(f"onnxruntime cannot load {model_path}: {first_line(exc)}. Re-export the bundle.") from None
        self._input_name = self._session.get_inputs()[0].name
        _check_io_matches_bundle(self._session, bundle, model_path)
        batch_dim = self._session.get_inputs()[0].shape[0]
        # An imported model may be exported for a fixed batch (often 1): feed it batches of that size.
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._apply_softmax = bundle.meta.output_kind == OutputKind.LOGITS
        provider = self._session.get_providers()[0]
        spinning = "" if spin_wait else ", no spin-wait"
        self.description = f"onnxruntime {ort.__version__} {provider} {precision}{routed}, {threads or 'default'} threads{spinning}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            if self._fixed_batch is None or len(batch) == self._fixed_batch:
                outputs = self._session.run(None, {self._input_name: batch})[0]
            else:
                outputs = self._run_in_fixed_batches(batch)
        except Exception as exc:  # onnxruntime raises its own untyped errors (shape, type, memory)
            raise BackendError(f"onnxruntime failed on a batch of shape {batch.shape}: {first_line(exc)}. Check the model's input spec.") from None
        outputs = np.asarray(outputs, dtype=np.float32)
        return softmax(outputs) if self._apply_softmax else outputs

    def infer_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.infer(np.stack(images))  # ONNX Runtime reads one array

    def _run_in_fixed_batches(self, batch: np.ndarray) -> np.ndarray:
        size = self._fixed_batch
        padded = np.concatenate([batch, np.zeros((-len(batch) % size, *batch.shape[1:]), batch.dtype)])
        parts = [self._session.run(None, {self._input_name: padded[i : i + size]})[0] for i in range(0, len(padded), size)]
        return np.concatenate(parts)[: len(batch)]

    def close(self) -> None:
        self._session = None


def _check_io_matches_bundle(session, bundle: Bundle, model_path: Path) -> None:
    """A bundle.json edited and resealed can disagree with its model: refuse it at load, instead of
    faulting every frame at the station."""
    output_shape = session.get_outputs()[0].shape
    classes = len(bundle.meta.class_names)
    width = output_shape[1] if len(output_shape) == 2 else None  # other shapes are the import's to refuse
    if isinstance(width, int) and width != classes:
        raise BundleError(f"{model_path} outputs {width} scores but {bundle.path / 'bundle.json'} names {classes} classes. "
                          "Re-create the bundle.")
    model_input = session.get_inputs()[0]
    shape, spec = model_input.shape, bundle.meta.input
    # Our bundles take (N, H, W, C) uint8; an imported model keeps its own layout, inside a wrapper or not.
    if model_input.type == "tensor(uint8)" and len(shape) == 4 and all(isinstance(d, int) for d in shape[1:3]) and tuple(shape[1:3]) != (spec.size_px, spec.size_px):
        raise BundleError(f"{model_path} takes {shape[1]}x{shape[2]} px but {bundle.path / 'bundle.json'} says "
                          f"{spec.size_px} px. Re-create the bundle.")


def _model_for(bundle: Bundle, precision: str, int8_path: Path | None) -> Path:
    if precision == "fp32":
        return bundle.onnx_path
    if precision != "int8":
        raise BackendUnavailableError(f"onnxruntime precision '{precision}' is unknown here; use fp32, or int8 after `inspection export --precision int8`.")
    if int8_path is not None:  # the export's parity gate, before the file is sealed into the bundle
        return int8_path
    if bundle.int8_onnx_path is None:
        raise BackendUnavailableError(
            f"bundle {bundle.path} has no int8 model. Run `inspection export {bundle.path} --precision int8 --calib DATA`, or use fp32."
        )
    return bundle.int8_onnx_path


def open_onnxruntime(bundle: Bundle, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                     int8_path: Path | None = None, spin_wait: bool = True) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(bundle, device=device, threads=threads, precision=precision, int8_path=int8_path, spin_wait=spin_wait)
