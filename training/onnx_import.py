"""Wrap an external ONNX classifier (Ultralytics, timm, ...) into a bundle the station can run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx

from inspection.backends import open_backend
from inspection.bundle import (
    ONNX_NAME,
    Bundle,
    BundleMeta,
    OutputKind,
    created_utc_now,
    ensure_can_create,
    seal_bundle,
    staging_dir_for,
    write_meta,
)
from inspection.decision import DecisionPolicy
from inspection.errors import BundleError, ConfigError, first_line
from inspection.input_spec import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ColourOrder, InputLayout, InputSpec, ResizeMode
from inspection.validation import parse_model
from training.calibration import REJECT_THRESHOLD
from training.versions import library_versions


def import_onnx_model(
    model_path: Path,
    out: Path,
    classes: tuple[str, ...],
    good_classes: tuple[str, ...],
    size_px: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    resize_mode: str = "stretch",
    item_crop_fraction: float | None = None,
    shrink: str = "area",
    overwrite: bool = False,
) -> dict:
    ensure_can_create(out, overwrite, inputs=[model_path])
    channels, model_size, output_width = _read_io_shapes(model_path)
    if size_px is None:
        if model_size is None:
            raise ConfigError(f"{model_path} has a dynamic input size. Pass --size PX.")
        size_px = model_size
    elif model_size is not None and model_size != size_px:
        raise ConfigError(f"--size {size_px} disagrees with {model_path}, whose input is {model_size} px. Pass --size {model_size} or leave it out.")
    if output_width is not None and output_width != len(classes):
        raise ConfigError(f"{model_path} outputs {output_width} scores but --classes names {len(classes)}. Name one class per output, in order.")
    default_mean = IMAGENET_MEAN_RGB if channels == 3 else (sum(IMAGENET_MEAN_RGB) / 3,)
    default_std = IMAGENET_STD_RGB if channels == 3 else (sum(IMAGENET_STD_RGB) / 3,)
    spec = parse_model(
        InputSpec,
        {
            "size_px": size_px,
            "channels": channels,
            "colour_order": ColourOrder.RGB if channels == 3 else ColourOrder.GRAY,
            "mean": mean or default_mean,
            "std": std or default_std,
            "resize_mode": ResizeMode(resize_mode),
            "layout": InputLayout.NCHW_FLOAT32,
            "item_crop_fraction": item_crop_fraction,
            "shrink": shrink,
        },
        "bundle import options",
    )
    policy = parse_model(
        DecisionPolicy,
        {"class_names": classes, "good_classes": good_classes, "pass_threshold": REJECT_THRESHOLD, "reject_threshold": REJECT_THRESHOLD},
        "bundle import options (--classes/--good)",
    )
    staging = staging_dir_for(out)
    try:
        shutil.copyfile(model_path, staging / ONNX_NAME)
        meta = BundleMeta(
            name=out.name,
            created_utc=created_utc_now(),
            class_names=classes,
            good_classes=good_classes,
            input=spec,
            policy=policy,
            source=f"imported from {model_path.name}",
            calibration={"basis": "not calibrated: imported model, thresholds at 0.5"},
            versions=library_versions(),
        )
        output_kind = _detect_output_kind(Bundle(staging, meta, ""), len(classes))
        meta = meta.model_copy(update={"output_kind": output_kind})
        write_meta(staging, meta)
        bundle_hash = seal_bundle(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"bundle": str(out), "bundle_hash": bundle_hash, "output_kind": output_kind.value, "input": spec.model_dump(mode="json")}


def _read_io_shapes(model_path: Path) -> tuple[int, int | None, int | None]:
    """(channels, square size or None when dynamic, output width or None) of an NCHW float classifier."""
    if not Path(model_path).is_file():
        raise ConfigError(f"{model_path} does not exist. Pass the path of the ONNX file to import.")
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:
        raise BundleError(f"{model_path} is not a readable ONNX model ({first_line(exc)}). Export it again.") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise BundleError(f"{model_path} has {len(inputs)} inputs; an image classifier has exactly one. Export a single-input model.")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise BundleError(f"{model_path} takes {onnx.TensorProto.DataType.Name(tensor.elem_type)} input; import expects float32 NCHW.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != 4 or dims[1] not in (1, 3):
        raise BundleError(f"{model_path} input shape {dims} is not NCHW with 1 or 3 channels. Export an NCHW image classifier.")
    height, width = dims[2], dims[3]
    if height is not None and width is not None and height != width:
        raise BundleError(f"{model_path} takes {width}x{height} input; bundles use square inputs. Export at a square size.")
    out_dims = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.output[0].type.tensor_type.shape.dim]
    return int(dims[1]), height, out_dims[-1] if len(out_dims) == 2 else None


def _detect_output_kind(bundle: Bundle, num_classes: int) -> OutputKind:
    """Probabilities if outputs are non-negative rows summing to one on random inputs, else logits."""
    spec = bundle.meta.input
    rng = np.random.default_rng(0)
    # One image: an export with a fixed batch of 1 must import too.
    batch = rng.standard_normal((1, spec.channels, spec.size_px, spec.size_px)).astype(np.float32)
    probe_meta = bundle.meta.model_copy(update={"output_kind": OutputKind.PROBABILITIES})
    backend = open_backend("onnxruntime", Bundle(bundle.path, probe_meta, ""))
    try:
        outputs = backend.infer(batch)
    finally:
        backend.close()
    if outputs.shape != (1, num_classes):
        raise BundleError(f"the model returned shape {outputs.shape[1:]} per image; expected ({num_classes},). Check --classes.")
    is_probability = bool(np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))
    return OutputKind.PROBABILITIES if is_probability else OutputKind.LOGITS
