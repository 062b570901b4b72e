"""`inspection demo`: the whole chain on the embedded default (synthetic line data, CPU)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.table import Table

from inspection.bundle import load_bundle
from inspection.console import stderr_console
from inspection.errors import OutputExistsError
from inspection.synthetic import write_dataset
from training.evaluate import evaluate_bundle
from training.pipeline import checkpoint_dir_for, train_bundle
from training.recipe import TrainRecipe

DEMO_IMAGES_PER_CLASS = 150
DEMO_IMAGE_SIZE_PX = 224
DEMO_SEED = 0
# A line runs one product per lot and its classifier is trained for that product: the demo does the same.
DEMO_PRODUCT = "white-round-scored"
DEMO_RECIPE = TrainRecipe(epochs=20)
DEMO_LINE_FRAMES = 3000
# The issue's latency target is set at 100 items/s; at 200 the 8-orientation model and an archive that
# writes every image of a weak model's rejects keep 2 slow cores at the edge (a late item on a slow day).
DEMO_LINE_RATE_HZ = 100.0
DEMO_LOT, DEMO_STATION = "DEMO-LOT", "demo-line"
DEMO_MARKER = ".inspection-demo"
MARKER_TEXT = "`inspection demo` work folder: each run replaces data/, bundle/, bundle.checkpoints/ and archive/ here.\n"


def run_demo(workdir: Path, fresh: bool = False, progress: bool = True) -> dict:
    started = time.perf_counter()
    data, bundle_path = workdir / "data", workdir / "bundle"
    _claim_workdir(workdir)
    if data.exists() and (fresh or not _is_demo_data(data)):
        shutil.rmtree(data)
    if not data.exists():
        stderr_console.print(f"[bold]1/5[/bold] synthesizing {DEMO_IMAGES_PER_CLASS} images per class of {DEMO_PRODUCT} into {data}")
        write_dataset(data, count_per_class=DEMO_IMAGES_PER_CLASS, seed=DEMO_SEED, size_px=DEMO_IMAGE_SIZE_PX,
                      product=DEMO_PRODUCT, progress=progress)
    else:
        stderr_console.print(f"[bold]1/5[/bold] reusing synthetic data in {data} (--fresh regenerates it)")
    stderr_console.print(f"[bold]2/5[/bold] training {DEMO_RECIPE.model} for up to {DEMO_RECIPE.epochs} epochs")
    # The demo owns its work folder: each run replaces the previous bundle and checkpoints.
    shutil.rmtree(checkpoint_dir_for(bundle_path), ignore_errors=True)
    training = train_bundle(data, bundle_path, DEMO_RECIPE, overwrite=True, progress=progress)
    stderr_console.print("[bold]3/5[/bold] verifying the bundle's SHA-256 manifest")
    bundle = load_bundle(bundle_path)
    stderr_console.print("[bold]4/5[/bold] evaluating the sealed bundle on the held-out test split")
    _, evaluation, selection = evaluate_bundle(bundle_path, data, "test", progress=progress)
    stderr_console.print(f"[bold]5/5[/bold] running a station on a synthetic line: {DEMO_LINE_FRAMES} items at {DEMO_LINE_RATE_HZ:.0f}/s, "
                         "2% defects, simulated rejector, archive, audit verify, lot report")
    line = run_demo_line(bundle_path, workdir / "archive", progress)
    summary = {
        "data": str(data),
        "bundle": str(bundle.path),
        "bundle_hash": bundle.bundle_hash,
        "bundle_verified": True,
        "training": training["training"],
        "parity": training["parity"],
        "calibration": training["calibration"],
        "test": {k: evaluation.metrics[k] for k in ("n", "accuracy", "escape_rate", "escape_rate_upper95", "false_reject_rate", "verdicts")},
        "report": str(bundle.path / "report" / "report.html"),
        "backend": selection["backend"],
        "line": line,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _print_summary(summary)
    return summary


def run_demo_line(bundle_path: Path, archive_path: Path, progress: bool) -> dict:
    """The station on a synthetic line, through the same runner `inspection station run` uses."""
    from station.archive import write_lot_report
    from station.config import StationConfig
    from station.runner import RunLimits, run_station

    shutil.rmtree(archive_path, ignore_errors=True)
    config = StationConfig.model_validate({
        "station": {"id": DEMO_STATION, "lot": DEMO_LOT, "operator": "demo"},
        "bundle": bundle_path,
        # The line's camera is the one the training images came from (station/geometry.py says why).
        "source": {"kind": "synthetic", "rate_hz": DEMO_LINE_RATE_HZ, "defect_rate": 0.02, "product": DEMO_PRODUCT,
                   "width_px": DEMO_IMAGE_SIZE_PX, "height_px": DEMO_IMAGE_SIZE_PX},
        "archive": {"path": archive_path},
    })
    summary = run_station(config, RunLimits(frames=DEMO_LINE_FRAMES), progress=progress)
    summary["lot_report"] = [str(p) for p in write_lot_report(archive_path, DEMO_LOT, archive_path / "reports")]
    return summary


def _claim_workdir(workdir: Path) -> None:
    """The demo replaces what it wrote in its work folder, which it marks on first use, and refuses
    to replace anything in a folder it has not marked (a user's data/, bundle/ or archive/)."""
    marker = workdir / DEMO_MARKER
    if not marker.is_file() and (workdir / "data" / "synth.json").is_file():
        # An earlier version of the demo left no marker; synthetic data (regenerable) says the folder is its.
        marker.write_text(MARKER_TEXT, encoding="utf-8")
    if marker.is_file():
        return
    ours = (workdir / "data", workdir / "bundle", checkpoint_dir_for(workdir / "bundle"), workdir / "archive")
    taken = [path for path in ours if path.exists() and not (path.is_dir() and not any(path.iterdir()))]
    if taken:
        raise OutputExistsError(f"{taken[0]} exists, and {workdir} is not a work folder of the demo (no {DEMO_MARKER}): "
                                "the demo would replace it. Choose another --workdir, or move it away.")
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(MARKER_TEXT, encoding="utf-8")


def _is_demo_data(data: Path) -> bool:
    """Data an earlier demo wrote with today's settings (an older demo's mixed products are replaced)."""
    try:
        info = json.loads((data / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (info.get("product"), info.get("seed"), info.get("count_per_class")) == (DEMO_PRODUCT, DEMO_SEED, DEMO_IMAGES_PER_CLASS)


def _line_text(line: dict) -> str:
    return (
        f"{line['frames']} items: pass {line['passed']}, reject {line['rejected']}, uncertain {line['uncertain']}, "
        f"fault {line['fault']}, late {line['late']}; escapes {line.get('escapes')}, false rejects {line.get('false_rejects')}; "
        f"p99 latency {line['latency_ms']['p99']:.1f} ms"
    )


def _target_text(calibration: dict) -> str:
    shown = "shown" if calibration["target_shown_at_95"] else "not shown"
    return (f"{calibration['max_escape_rate']:.1%}: {calibration['validation_escapes']} of {calibration['validation_defective_items']} "
            f"defective validation items pass; {shown} at 95% (bound {calibration['validation_escape_rate_upper95']:.1%}, "
            f"{calibration['defective_items_to_show_target']} items needed)")


def _print_summary(summary: dict) -> None:
    table = Table(title="inspection demo", show_header=False)
    test = summary["test"]
    rows = [
        ("bundle", f"{summary['bundle']} (verified, sha256 {summary['bundle_hash'][:16]}...)"),
        ("training", f"{summary['training']['epochs_run']} epochs, {summary['training']['seconds']:.0f} s on {summary['training']['device']}"),
        ("ONNX parity", f"max |dp| {summary['parity']['max_abs_probability_diff']:.1e}, top-1 agreement {summary['parity']['top1_agreement']:.4f}"),
        ("thresholds", f"pass < {summary['calibration']['pass_threshold']:.4g}, reject >= {summary['calibration']['reject_threshold']:.4g}"),
        ("escape target", _target_text(summary["calibration"])),
        ("test accuracy", f"{test['accuracy']:.4f} on {test['n']} images"),
        ("escape rate", f"{test['escape_rate']:.4f} (95% upper bound {test['escape_rate_upper95']:.4f})"),
        ("false reject rate", f"{test['false_reject_rate']:.4f}"),
        ("verdicts", ", ".join(f"{k} {v}" for k, v in test["verdicts"].items())),
        ("report", summary["report"]),
        ("line", _line_text(summary["line"])),
        ("audit trail", f"verified: {summary['line']['audit_verified']}, {summary['line']['archived']} records; report {summary['line']['lot_report'][0]}"),
        ("total time", f"{summary['seconds']:.0f} s"),
    ]
    if test["false_reject_rate"] >= 0.5:
        rows.append(("note", f"the model rejects {test['false_reject_rate']:.0%} of good test items: {DEMO_IMAGES_PER_CLASS} images "
                             f"per class and {DEMO_RECIPE.epochs} epochs on the CPU train a weak classifier, and a weak one "
                             "is held to the escape target by rejecting. The README's quality bars show what more images "
                             "and epochs reach."))
    for key, value in rows:
        table.add_row(key, value)
    stderr_console.print(table)
