"""Bundles of untrained models for benchmarks: speed depends on the architecture, not the weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from inspection.bundle import ONNX_NAME, WEIGHTS_NAME, BundleMeta, created_utc_now, seal_bundle, staging_dir_for, write_meta
from inspection.decision import DecisionPolicy
from inspection.input_spec import default_input_spec
from training.export_onnx import export_onnx
from training.models import build_classifier
from training.recipe import TrainRecipe
from training.versions import library_versions

BENCH_CLASSES = ("good", "chipped", "cracked", "spot", "discoloured", "broken", "foreign_particle")


def untrained_bundle(architecture: str, size_px: int, out: Path,
                     item_crop_fraction: float | None = TrainRecipe().item_crop_fraction) -> Path:
    """A sealed bundle of `architecture` with its initial weights (source 'benchmark'); reused when present.

    It crops around the item and shrinks the crop as trained bundles do by default, so a station row
    measures the same per-frame preparation a deployed default bundle does (preparing a 640x480 line
    frame for 224 px took 0.71 ms with an `area` shrink, 0.34 ms with the default, on the 2-core
    machine: benchmarks/results/station_overhead_224_cpu.json)."""
    out = Path(out)
    if (out / "manifest.sha256").is_file():
        return out
    torch.manual_seed(0)
    spec = default_input_spec(size_px, 3, item_crop_fraction, shrink=TrainRecipe().shrink)
    classifier = build_classifier(architecture, len(BENCH_CLASSES), spec).eval()
    staging = staging_dir_for(out)
    try:
        export_onnx(classifier, size_px, 3, staging / ONNX_NAME)
        save_file({k: v.contiguous() for k, v in classifier.backbone.state_dict().items()}, str(staging / WEIGHTS_NAME))
        policy = DecisionPolicy(class_names=BENCH_CLASSES, good_classes=("good",), pass_threshold=0.5, reject_threshold=0.5)
        meta = BundleMeta(name=out.name, created_utc=created_utc_now(), class_names=BENCH_CLASSES, good_classes=("good",),
                          input=spec, policy=policy, architecture=architecture, source="benchmark", versions=library_versions())
        write_meta(staging, meta)
        seal_bundle(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
