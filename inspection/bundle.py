"""The model bundle: a sealed directory that is the unit of change control.

    bundle.json        BundleMeta below (schema version, classes, input spec, policy, metrics, ...)
    model.onnx         the classifier (dynamic batch); for our own models uint8 NHWC in, probabilities out
    weights.safetensors  the same weights for the torch backend (optional; no pickle anywhere)
    dataset_manifest.jsonl  the manifest of the data it was trained on (optional)
    report/            validation report (optional)
    engines/           TensorRT engines named by GPU, compute capability, TensorRT version, precision
    manifest.sha256    SHA-256 of every other file; verified before anything is loaded
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field

from inspection.decision import DecisionPolicy
from inspection.errors import BundleError, ConfigError, OutputExistsError
from inspection.file_manifest import MANIFEST_NAME, verify_manifest, write_manifest
from inspection.input_spec import InputSpec
from inspection.validation import StrictModel, parse_model

SCHEMA_VERSION = 1
META_NAME = "bundle.json"
ONNX_NAME = "model.onnx"
INT8_ONNX_NAME = "model.int8.onnx"
WEIGHTS_NAME = "weights.safetensors"
DATASET_MANIFEST_NAME = "dataset_manifest.jsonl"


class OutputKind(StrEnum):
    PROBABILITIES = "probabilities"
    LOGITS = "logits"  # backends apply softmax


class EngineEntry(StrictModel):
    file: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    max_batch: int


class QuantizedModelEntry(StrictModel):
    """An int8 Q/DQ copy of model.onnx (ONNX Runtime on the CPU; TensorRT builds int8 engines from it)."""

    file: str = INT8_ONNX_NAME
    method: str  # how it was quantized, e.g. "onnxruntime static QDQ, per-channel"
    calibration: dict[str, Any]  # images used, their split and dataset hash
    parity: dict[str, Any]  # against fp32 ONNX Runtime on the validation split
    parity_overridden: bool = False  # exported although the gate failed (never picked by `auto`)
    scopes_tried: list[dict[str, Any]] = []  # each quantization scope's gate result, in the order tried


class BundleMeta(StrictModel):
    schema_version: int = SCHEMA_VERSION
    name: str
    created_utc: str
    class_names: tuple[str, ...]
    good_classes: tuple[str, ...]
    input: InputSpec
    output_kind: OutputKind = OutputKind.PROBABILITIES
    policy: DecisionPolicy
    # Max absolute difference of probabilities allowed between backends for this bundle.
    backend_tolerance: float = 1e-4
    # The model averages its probabilities over the item's 8 orientations (WithSoftmax); model.onnx
    # holds the average, the torch backend rebuilds it from this flag.
    orientation_average: bool = False
    architecture: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    recipe: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    source: str = "trained"
    engines: tuple[EngineEntry, ...] = ()
    int8: QuantizedModelEntry | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    path: Path
    meta: BundleMeta
    bundle_hash: str  # SHA-256 of manifest.sha256: names this exact bundle in audit records

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_NAME

    @property
    def int8_onnx_path(self) -> Path | None:
        return self.path / self.meta.int8.file if self.meta.int8 is not None else None

    @property
    def weights_path(self) -> Path | None:
        path = self.path / WEIGHTS_NAME
        return path if path.is_file() else None


def load_bundle(path: Path | str) -> Bundle:
    """Verify every file's hash, then parse bundle.json. Raises naming the bad file."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle {root} does not exist or is not a folder. Pass the folder `inspection train` wrote.")
    bundle_hash = verify_manifest(root)
    meta = read_meta(root)
    if not (root / ONNX_NAME).is_file():
        raise BundleError(f"{root / ONNX_NAME} is missing. Re-create the bundle.")
    return Bundle(root, meta, bundle_hash)


def read_meta(root: Path) -> BundleMeta:
    meta_path = root / META_NAME
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{meta_path} is missing. Re-create the bundle.") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc.msg} at line {exc.lineno}). Restore it.") from None
    except UnicodeDecodeError:
        raise BundleError(f"{meta_path} is not UTF-8 text. Restore it.") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{meta_path} holds a JSON {type(raw).__name__}, not the bundle's object. Restore it.")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"{meta_path} has schema_version {raw.get('schema_version')!r}; this tool reads {SCHEMA_VERSION}. "
            "Re-create the bundle with this version of the tool."
        )
    meta = parse_model(BundleMeta, raw, str(meta_path), BundleError)
    if meta.policy.class_names != meta.class_names or meta.policy.good_classes != meta.good_classes:
        raise BundleError(f"{meta_path}: policy classes disagree with class_names/good_classes. Re-create the bundle.")
    return meta


def write_meta(root: Path, meta: BundleMeta) -> None:
    text = json.dumps(meta.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    (root / META_NAME).write_text(text, encoding="utf-8")


def created_utc_now() -> str:
    """The `created_utc` of a new bundle: ISO 8601, seconds, 'Z'."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def staging_dir_for(final: Path) -> Path:
    """A sibling folder in which a bundle is assembled before it is sealed and moved into place."""
    final = Path(final)
    staging = final.parent / f".{final.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def ensure_can_create(final: Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> None:
    """Refuse an output that exists (unless it is a bundle and overwrite is asked), or that overlaps an
    input: --overwrite must never delete a dataset, and a bundle must not land inside one."""
    final = Path(final)
    ensure_not_in_bundle(final, "--out", parents_only=True)  # final itself may be the bundle --overwrite replaces
    for source in inputs:
        _ensure_apart(final, Path(source))
    if final.exists() and not final.is_dir():
        raise OutputExistsError(f"{final} is a file. Choose a folder path for --out.")
    if final.exists() and any(final.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{final} already exists and is not empty. Choose another --out, or pass --overwrite to replace it.")
        if not (final / META_NAME).is_file():
            raise OutputExistsError(f"{final} is not a bundle (no {META_NAME}) and --overwrite replaces only a bundle. "
                                    "Choose another --out.")


def ensure_not_in_bundle(path: Path, what: str, parents_only: bool = False) -> None:
    """Writing anything into a sealed bundle breaks its seal: `bundle verify` fails and stations refuse it."""
    resolved = Path(path).resolve()
    for folder in resolved.parents if parents_only else (resolved, *resolved.parents):
        if (folder / META_NAME).is_file() and (folder / MANIFEST_NAME).is_file():
            raise ConfigError(f"{what} {path} lies inside the sealed bundle {folder}: writing there would break its seal. "
                              "Choose a path outside the bundle.")


def _ensure_apart(out: Path, source: Path) -> None:
    out_resolved, source_resolved = out.resolve(), source.resolve()
    if source_resolved.is_relative_to(out_resolved):
        raise ConfigError(f"--out {out} holds the input {source}: writing the bundle there would replace it. "
                          "Choose an --out outside the input.")
    if out_resolved.is_relative_to(source_resolved):
        raise ConfigError(f"--out {out} is inside the input {source}: the bundle would become part of it. "
                          "Choose an --out outside the input.")


def reseal_with(bundle: Bundle, new_files: dict[str, Path], meta: BundleMeta) -> str:
    """A new version of a sealed bundle with files added and bundle.json replaced, swapped into place
    in one rename. Its hash changes: what runs at the station changed, so audit records must say so."""
    staging = staging_dir_for(bundle.path)
    try:
        shutil.copytree(bundle.path, staging, dirs_exist_ok=True)
        for name, source in new_files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        write_meta(staging, meta)
        return seal_bundle(staging, bundle.path, overwrite=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def seal_bundle(staging: Path, final: Path, overwrite: bool = False) -> str:
    """Write the manifest and move the staging folder to `final` in one rename. Returns the bundle hash."""
    bundle_hash = write_manifest(staging)
    final = Path(final)
    ensure_can_create(final, overwrite)
    if final.exists():
        # Keep the old bundle until the new one is in place: a failure in between loses nothing.
        retired = final.parent / f".{final.name}.old-{os.getpid()}"
        final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired)
    else:
        staging.rename(final)
    return bundle_hash
