"""`inspection export BUNDLE --tensorrt`: build a TensorRT engine for this GPU and add it to the bundle.

Written against TensorRT 10's documented Python API; it cannot run where TensorRT is not installed
(our development and benchmark machines): there it stops with a clear error and writes nothing.
- An optimization profile over the batch (min 1, opt and max `max_batch`), a workspace limit.
- fp16: BuilderFlag.FP16. int8: explicit quantization from the bundle's Q/DQ model.int8.onnx
  (`inspection export --precision int8` first), with FP16 allowed for layers left in float;
  never the deprecated implicit calibrators.
- A timing cache kept beside the bundle (BUNDLE.trt-timing.cache) makes rebuilds fast.
- The engine is named by GPU, compute capability, TensorRT version and precision, listed in
  bundle.json and the manifest, and gated on parity with fp32 ONNX Runtime on the val split.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from inspection.backends import open_backend
from inspection.backends.tensorrt_backend import current_gpu, import_tensorrt
from inspection.bundle import Bundle, EngineEntry, load_bundle, reseal_with
from inspection.errors import DataError, ExportError
from training.dataset_index import index_dataset
from training.evaluate import infer_probabilities, label_indices, load_prepared
from training.precision_gate import precision_parity_record, require_precision_parity

WORKSPACE_BYTES = 2 << 30
PRECISIONS = ("fp32", "fp16", "int8")


def engine_file_name(gpu_name: str, compute_capability: str, trt_version: str, precision: str) -> str:
    gpu = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return f"engines/{gpu}_sm{compute_capability.replace('.', '')}_trt{trt_version}_{precision}.engine"


def build_engine(trt, onnx_path: Path, precision: str, max_batch: int, frame_shape: tuple[int, int, int],
                 timing_cache_path: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}. Re-export the bundle's ONNX.")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # honours the Q/DQ scales of the network; no calibrator
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, (1, *frame_shape), (max_batch, *frame_shape), (max_batch, *frame_shape))
    if config.add_optimization_profile(profile) < 0:
        raise ExportError(f"TensorRT refused the optimization profile for batch 1..{max_batch}.")
    cache_bytes = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise ExportError(f"TensorRT rejected the timing cache {timing_cache_path}; delete it and retry.")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build a {precision} engine from {onnx_path}; its log above says why.")
    timing_cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(serialized))


def export_tensorrt(bundle_path: Path, precision: str, calib_root: Path | None, max_batch: int,
                    allow_parity_failure: bool = False, progress: bool = True) -> dict:
    trt = import_tensorrt()
    import torch

    if precision not in PRECISIONS:
        raise ExportError(f"TensorRT precision {precision!r} is unknown; use {', '.join(PRECISIONS)}.")
    if not torch.cuda.is_available():
        raise ExportError("building a TensorRT engine needs the GPU it will run on; torch sees none here.")
    if calib_root is None:
        raise ExportError("--tensorrt needs --calib DATA: the engine's parity gate runs on DATA's val split.")
    bundle = load_bundle(bundle_path)
    onnx_path = bundle.onnx_path
    if precision == "int8":
        if bundle.int8_onnx_path is None:
            raise ExportError(f"an int8 engine is built from the bundle's Q/DQ model. Run `inspection export {bundle.path} "
                              "--precision int8 --calib DATA` first.")
        onnx_path = bundle.int8_onnx_path
    spec = bundle.meta.input
    frame_shape = (spec.size_px, spec.size_px, spec.channels)
    gpu_name, capability = current_gpu(torch)
    file_name = engine_file_name(gpu_name, capability, trt.__version__, precision)
    timing_cache = bundle.path.parent / f"{bundle.path.name}.trt-timing.cache"
    engine_bytes = build_engine(trt, onnx_path, precision, max_batch, frame_shape, timing_cache)
    entry = EngineEntry(file=file_name, gpu_name=gpu_name, compute_capability=capability,
                        tensorrt_version=trt.__version__, precision=precision, max_batch=max_batch)
    with tempfile.TemporaryDirectory(prefix="engine-") as tmp:
        engine_path = Path(tmp) / "engine"
        engine_path.write_bytes(engine_bytes)
        candidate = Bundle(bundle.path, bundle.meta.model_copy(update={"engines": (entry,)}), bundle.bundle_hash)
        parity = _engine_parity(bundle, candidate, engine_path, entry, calib_root, progress)
        require_precision_parity(parity, allow_parity_failure)
        recorded = dict(parity, overridden=not parity["passed"])
        engines = tuple(e for e in bundle.meta.engines if e.file != file_name) + (entry,)
        meta = bundle.meta.model_copy(update={"engines": engines,
                                              "parity": dict(bundle.meta.parity, **{f"tensorrt_{precision}": recorded})})
        bundle_hash = reseal_with(bundle, {file_name: engine_path}, meta)
    return {"bundle": str(bundle.path), "bundle_hash": bundle_hash, "engine": entry.model_dump(), "parity": recorded}


def _engine_parity(bundle: Bundle, candidate: Bundle, engine_path: Path, entry: EngineEntry, calib_root: Path,
                   progress: bool) -> dict:
    index = index_dataset(calib_root, progress=progress)
    split = next((name for name in ("val", "test") if index.split(name)), None)
    if split is None:
        raise DataError(f"{calib_root} has no val or test images for the engine's parity gate. Pass the bundle's dataset.")
    entries = index.split(split)
    images = load_prepared(index.root, entries, bundle.meta.input, progress)
    reference = infer_probabilities(open_backend("onnxruntime", bundle), images, bundle.meta.input)
    # The engine is still in a temporary folder: point a copy of the bundle at it for the backend.
    staged = Path(engine_path).parent / "bundle"
    (staged / Path(entry.file).parent).mkdir(parents=True)
    Path(engine_path).replace(staged / entry.file)
    engine_bundle = Bundle(staged, candidate.meta, candidate.bundle_hash)
    backend = open_backend("tensorrt", engine_bundle, device="cuda", precision=entry.precision, max_batch=entry.max_batch)
    try:
        probabilities = infer_probabilities(backend, images, bundle.meta.input)
    finally:
        backend.close()
    (staged / entry.file).replace(engine_path)
    return precision_parity_record(reference, probabilities, label_indices(entries, bundle.meta.class_names), split,
                                   f"tensorrt {entry.precision}")
