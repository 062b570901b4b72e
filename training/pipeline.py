"""DATA folder -> trained, exported, parity-checked, calibrated, evaluated and sealed model bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

from inspection.backends import open_backend
from inspection.bundle import (
    DATASET_MANIFEST_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    BundleMeta,
    Bundle,
    created_utc_now,
    ensure_can_create,
    seal_bundle,
    staging_dir_for,
    write_meta,
)
from inspection.decision import DecisionPolicy
from inspection.errors import ConfigError, DataError
from inspection.input_spec import default_input_spec
from inspection.image_io import read_image
from training.dataset_index import index_dataset, write_manifest_jsonl
from training.recipe import TrainRecipe
from training.start_checks import check_checkpoint_presence, check_weights_file
from training.versions import library_versions, machine_description


def checkpoint_dir_for(bundle_path: Path) -> Path:
    return bundle_path.parent / f"{bundle_path.name}.checkpoints"


def train_bundle(
    data_root: Path,
    out: Path,
    recipe: TrainRecipe,
    good_classes: tuple[str, ...] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Train on DATA and write a sealed bundle at `out`. Returns a summary (also in bundle.json)."""
    data_root, out = Path(data_root), Path(out)
    ensure_can_create(out, overwrite, inputs=[data_root])
    if recipe.weights:
        check_weights_file(Path(recipe.weights))
    check_checkpoint_presence(checkpoint_dir_for(out), resume)
    index = index_dataset(data_root, progress=progress)
    class_names = index.classes
    good = good_classes or guess_good_classes(class_names)
    unknown = [name for name in good if name not in class_names]
    if unknown:
        raise ConfigError(f"--good names {', '.join(unknown)}, which is not a class of {data_root} "
                          f"({', '.join(class_names)}). Pass the good class names as the folders spell them.")
    if set(good) == set(class_names):
        raise ConfigError(f"--good names every class of {data_root} ({', '.join(class_names)}): nothing would be a defect. "
                          "Name only the good classes.")
    spec = default_input_spec(recipe.image_size_px, index.channels, recipe.item_crop_fraction, recipe.shrink)
    splits = {name: index.split(name) for name in ("train", "val", "test")}
    if not splits["train"]:
        raise DataError(f"{data_root} has no training images after the split. Add images or a train/ folder.")
    checkpoint_dir_for(out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, not after an epoch
    # Imported once the inputs are known to be usable: torch, torchvision, scipy and matplotlib take
    # about 5 s to import here, and a mistyped folder should be told at once.
    from safetensors.torch import save_file

    from training.calibration import REJECT_THRESHOLD, calibrate_policy
    from training.evaluate import evaluate_probabilities, infer_probabilities, label_indices, load_prepared
    from training.export_onnx import export_onnx, parity_record, require_parity
    from training.report import write_validation_report
    from training.models import check_architecture
    from training.trainer import LabeledImages, predict_probabilities, resolve_device, train_classifier

    check_architecture(recipe.model)  # before the images are loaded: that can take minutes
    resolve_device(recipe.device)
    data = {
        name: LabeledImages(load_prepared(index.root, entries, spec, progress), label_indices(entries, class_names))
        for name, entries in splits.items()
    }
    result = train_classifier(
        data["train"], data["val"], list(class_names), spec, recipe, checkpoint_dir_for(out), index.dataset_hash, resume, progress,
        good_classes=good,
    )
    # Parity and calibration need held-out images; a dataset without val falls back to train, and says so.
    check_split = "val" if len(splits["val"]) else "train"
    staging = staging_dir_for(out)
    try:
        export_onnx(result.classifier, spec.size_px, spec.channels, staging / ONNX_NAME, recipe.orientation_average)
        base_policy = DecisionPolicy(
            class_names=class_names, good_classes=good, pass_threshold=REJECT_THRESHOLD, reject_threshold=REJECT_THRESHOLD
        )
        provisional = BundleMeta(
            name=out.name, created_utc=created_utc_now(), class_names=class_names, good_classes=good, input=spec, policy=base_policy,
            orientation_average=recipe.orientation_average,
        )
        backend = open_backend("onnxruntime", Bundle(staging, provisional, ""))
        check = data[check_split]
        onnx_check = infer_probabilities(backend, check.images, spec)
        parity = dict(parity_record(predict_probabilities(result.classifier, check.images, recipe.orientation_average), onnx_check), split=check_split)
        require_parity(parity)
        policy, calibration = calibrate_policy(onnx_check, check.labels, base_policy, recipe.max_escape_rate)
        calibration["split"] = check_split
        test = data["test"]
        evaluation = (
            evaluate_probabilities(splits["test"], test.labels, infer_probabilities(backend, test.images, spec), policy)
            if len(test.images)
            else None
        )
        backend.close()
        save_file({k: v.contiguous() for k, v in result.classifier.backbone.state_dict().items()}, str(staging / WEIGHTS_NAME))
        write_manifest_jsonl(index.entries, staging / DATASET_MANIFEST_NAME)
        if evaluation is not None:
            write_validation_report(
                staging / "report",
                title=f"{recipe.model} on {data_root.name} (test split)",
                metrics=evaluation.metrics,
                class_names=list(class_names),
                good_classes=list(good),
                y_true=evaluation.y_true,
                probabilities=evaluation.probabilities,
                verdicts=[v.value for v in evaluation.verdicts],
                image_paths=[index.root / e.path for e in splits["test"]],
                calibration=calibration,
                load_image=read_image,
            )
        training_record = {
            "device": result.device,
            "machine": machine_description(),
            "seconds": round(result.seconds, 1),
            "epochs_planned": result.epochs_planned,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "model_selection": result.model_selection,
            "train_images_per_s": round(result.train_images_per_s, 1),
            "history": result.history,
        }
        meta = provisional.model_copy(
            update={
                "policy": policy,
                "architecture": recipe.model,
                "metrics": {"test": evaluation.metrics} if evaluation else {},
                "calibration": calibration,
                "parity": {"onnxruntime_vs_torch": parity},
                "dataset": dict(index.summary(), manifest=DATASET_MANIFEST_NAME, split_notes=list(index.notes)),
                "recipe": dict(recipe.model_dump(), training=training_record),
                "versions": library_versions(),
            }
        )
        write_meta(staging, meta)
        bundle_hash = seal_bundle(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "bundle": str(out),
        "bundle_hash": bundle_hash,
        "classes": list(class_names),
        "good_classes": list(good),
        "dataset": index.summary(),
        "split_notes": list(index.notes),
        "skipped_files": [list(s) for s in index.skipped],
        "training": {k: v for k, v in training_record.items() if k != "history"},
        "parity": parity,
        "calibration": calibration,
        "test": _headline(evaluation.metrics) if evaluation else None,
    }


def _headline(metrics: dict) -> dict:
    keys = ("n", "accuracy", "escape_rate", "escape_rate_upper95", "false_reject_rate", "verdicts")
    return {k: metrics[k] for k in keys}


def guess_good_classes(class_names: tuple[str, ...]) -> tuple[str, ...]:
    for candidate in ("good", "normal", "ok", "pass"):
        if candidate in class_names:
            return (candidate,)
    raise DataError(
        f"cannot tell which class is good among {', '.join(class_names)}. Name the folder 'good' or pass --good CLASS."
    )

