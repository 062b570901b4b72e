"""The `inspection` command: one subcommand per library function.

This is the one module that composes the three packages. It imports `training` and `station`
lazily, inside the handlers, so `import inspection` stays free of torch and of the other packages,
and a station that never trains never loads the training stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from inspection.errors import ConfigError, InspectionError

PRECISION_NAMES = ("fp32", "fp16", "int8")


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 0.485,0.456,0.406") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a number above 0")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (1-65535)")
    return int(text)


def _positive_ints(text: str) -> tuple[int, ...]:
    values = _ints(text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of whole numbers of at least 1, e.g. 1,8,64")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = _csv(text)
    if not names:
        raise argparse.ArgumentTypeError("the list is empty; give comma-separated names")
    return names


def _precisions(text: str) -> tuple[str, ...]:
    names = _names(text)
    unknown = [name for name in names if name not in PRECISION_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(unknown)}; use {', '.join(PRECISION_NAMES)}")
    return names


class _OneLineErrors(argparse.ArgumentParser):
    """Usage mistakes are one line, naming the fix, and exit 2 (argparse prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}. See `{self.prog} --help`.\n")


def _frame_size(text: str) -> int | tuple[int, int]:
    """--size PX (a square) or WxH (a camera frame, e.g. 640x480)."""
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(part.strip().isdigit() for part in parts):
        return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    raise ConfigError(f"--size {text} is not a size; give a side in px (224) or WIDTHxHEIGHT (640x480)")


def _value_or_none(text: str | None) -> str | None:
    """Options such as --item-crop FRACTION|none: `none` turns the setting off; the value is validated by its model."""
    return None if text is None or text.strip().lower() == "none" else text


# ----------------------------------------------------------------------------- data


def cmd_data_index(args: argparse.Namespace) -> int:
    from inspection.console import warn
    from training.dataset_index import check_manifest_target, index_dataset, write_manifest_jsonl

    out = args.out or Path(f"{Path(args.root).resolve().name}.manifest.jsonl")
    check_manifest_target(out, Path(args.root))
    index = index_dataset(args.root, progress=not args.json)
    write_manifest_jsonl(index.entries, out)
    _warn_about_index(index, warn)
    summary = dict(index.summary(), manifest=str(out), split_notes=list(index.notes))
    if args.json:
        _print_json(summary)
    else:
        print(f"{summary['images']} images, classes {', '.join(summary['classes'])}; manifest written to {out}")
        print(f"dataset hash {summary['dataset_hash']}")
    return 0


def _excluded_files_line(excluded: Any) -> str:
    """One warning line for the files a dataset scan left out: (path, reason) pairs."""
    return f"{len(excluded)} file(s) excluded: " + "; ".join(f"{path} ({reason})" for path, reason in excluded)


def _warn_about_index(index: Any, warn: Callable[[str], None]) -> None:
    if index.skipped:
        warn(_excluded_files_line(index.skipped))
    for note in index.notes:
        warn(note)


def cmd_data_synth(args: argparse.Namespace) -> int:
    from inspection.synthetic import write_dataset

    png = {} if args.png_level is None else {"png_level": args.png_level}
    info = write_dataset(Path(args.out), count_per_class=args.count, seed=args.seed, size_px=_frame_size(args.size),
                         progress=not args.json, product=args.product, **png)
    if args.json:
        _print_json(info)
    else:
        print(f"wrote {args.out}")
    return 0


def cmd_data_make(args: argparse.Namespace) -> int:
    from inspection.synthetic.definition import make_dataset

    made = make_dataset(args.definition, args.out, progress=not args.json)
    if args.json:
        _print_json(dict(made.summary, path=str(made.path), made=made.made))
    else:
        print(f"wrote {made.path}" if made.made else f"{made.path} already holds this dataset; nothing to do")
    return 0


class _SynthHelpFormatter(argparse.HelpFormatter):
    """Names the synthetic products only when help is shown: the catalogue's package loads OpenCV."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest != "product":
            return super()._get_help_string(action)
        from inspection.synthetic.products import PRODUCT_NAMES

        return (f"one product for every image, as one lot of a line: {', '.join(PRODUCT_NAMES[1:])}; "
                "or mixed (default): every image a random product")

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # keep names whole


def cmd_data_export(args: argparse.Namespace) -> int:
    from training.labeling.catalog import Catalog, build_catalog
    from training.labeling.export import export_dataset
    from training.labeling.workspace import open_workspace

    catalog = Catalog.open(open_workspace(args.data, args.workspace))
    if catalog.count() == 0:
        build_catalog(catalog, progress=False)
    summary = export_dataset(catalog, args.out)
    print(f"exported {summary['images']} labeled images of classes {', '.join(summary['classes'])} to {summary['out']}")
    return 0


# ----------------------------------------------------------------------------- label / users


def cmd_label(args: argparse.Namespace) -> int:
    from training.labeling.server_context import LabelServerConfig, check_port_free, open_context
    from training.labeling.users import default_users_path

    config = LabelServerConfig(
        data=args.data, users=args.users or default_users_path(), archive=args.archive, bundle=args.bundle,
        workspace=args.workspace, host=args.host, port=args.port, rescan=args.rescan,
    )  # fmt: skip
    check_port_free(config.host, config.port)
    ctx = open_context(config)
    from training.labeling.app import serve  # Gradio: seconds to import, so only once the inputs are good

    serve(ctx, config.host, config.port)
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from station.archive import utc_now_iso
    from training.labeling.users import add_user, default_users_path, read_new_password

    path = args.users or default_users_path()
    entry = add_user(path, args.name, args.role, read_new_password(), args.full_name, utc_now_iso())
    print(f"added {args.name} ({entry.role.value}) to {path}")
    return 0


# ----------------------------------------------------------------------------- train / eval


def cmd_train(args: argparse.Namespace) -> int:
    from inspection.validation import parse_model
    from training.pipeline import train_bundle
    from training.recipe import TrainRecipe

    given = {
        "model": args.model,
        "image_size_px": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": args.device,
        "weights": str(args.weights) if args.weights else None,
        "seed": args.seed,
        "max_escape_rate": args.max_escape_rate,
        "good_vs_defect_weight": args.good_vs_defect_weight,
        "hard_example_boost": args.hard_example_boost,
        "shrink": args.shrink,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if args.item_crop is not None:
        options["item_crop_fraction"] = _value_or_none(args.item_crop)
    if args.budget_s is not None:
        options["time_budget_s"] = _value_or_none(args.budget_s)
    if args.no_orientation_average:
        options["orientation_average"] = False
    recipe = parse_model(TrainRecipe, options, "command-line options")
    summary = train_bundle(
        Path(args.data), Path(args.out), recipe, good_classes=_csv(args.good) if args.good else None,
        resume=args.resume, overwrite=args.overwrite, progress=not args.json,
    )
    _report_training(summary, args.json)
    return 0


def _report_training(summary: dict, as_json: bool) -> None:
    from inspection.console import warn
    from training.calibration import target_note

    for note in summary["split_notes"]:
        warn(note)
    if summary["calibration"] and (note := target_note(summary["calibration"])):
        warn(note)
    if summary["skipped_files"]:
        warn(_excluded_files_line(summary["skipped_files"]))
    if as_json:
        _print_json(summary)
        return
    test = summary["test"]
    print(f"bundle {summary['bundle']} (sha256 {summary['bundle_hash'][:16]}...)")
    training = summary["training"]
    print(f"trained {training['epochs_run']} of {training['epochs_planned']} planned epochs in {training['seconds']:.0f} s on {training['device']}")
    if test:
        print(
            f"test: n={test['n']} accuracy={test['accuracy']:.4f} escape_rate={test['escape_rate']:.4f} "
            f"(95% upper {test['escape_rate_upper95']:.4f}) false_reject_rate={test['false_reject_rate']:.4f}"
        )


def cmd_eval(args: argparse.Namespace) -> int:
    from inspection.console import warn
    from training.evaluate import evaluate_bundle

    bundle, evaluation, selection = evaluate_bundle(Path(args.bundle), Path(args.data), args.split, args.backend, progress=not args.json)
    if selection["excluded_files"]:
        warn(_excluded_files_line(selection["excluded_files"]))
    if selection["excluded_seen_in_training"]:
        warn(f"{selection['excluded_seen_in_training']} image(s) of this split were in the model's training data and were left out")
    result = dict(evaluation.metrics, **selection, bundle=str(bundle.path), bundle_hash=bundle.bundle_hash)
    if args.json:
        _print_json(result)
    else:
        print(
            f"{args.split}: n={result['n']} accuracy={result['accuracy']:.4f} escape_rate={result['escape_rate']:.4f} "
            f"(95% upper {result['escape_rate_upper95']:.4f}) false_reject_rate={result['false_reject_rate']:.4f}"
        )
    return 0


# ----------------------------------------------------------------------------- bundle


def cmd_bundle_verify(args: argparse.Namespace) -> int:
    from inspection.bundle import load_bundle

    bundle = load_bundle(Path(args.bundle))
    print(f"ok: {bundle.path} intact (sha256 {bundle.bundle_hash})")
    return 0


def cmd_bundle_import(args: argparse.Namespace) -> int:
    from training.onnx_import import import_onnx_model

    summary = import_onnx_model(
        Path(args.model), Path(args.out), classes=_csv(args.classes), good_classes=_csv(args.good),
        size_px=args.size, mean=args.mean, std=args.std, resize_mode=args.resize,
        item_crop_fraction=_value_or_none(args.item_crop), shrink=args.shrink, overwrite=args.overwrite,
    )
    print(f"bundle {summary['bundle']} (sha256 {summary['bundle_hash'][:16]}...), output kind {summary['output_kind']}")
    return 0


# ----------------------------------------------------------------------------- station / audit


def cmd_station_run(args: argparse.Namespace) -> int:
    from station.quickstart import config_from_arguments
    from station.config import load_station_config
    from station.runner import RunLimits, run_station

    if args.config is not None:
        quick = [name for name, value in (("--bundle", args.bundle), ("--source", args.source), ("--rate", args.rate),
                                          ("--archive", args.archive)) if value is not None]
        if quick:
            raise ConfigError(f"{', '.join(quick)} belong to the quick start and would be ignored next to {args.config}. "
                              "Put the settings in the YAML (bundle:, source:, archive:).")
        config = load_station_config(args.config)
    else:
        config = config_from_arguments(args.bundle, args.source, args.rate, args.archive)
    summary = run_station(config, RunLimits(args.frames, args.duration_s), progress=not args.json, latency_png=args.latency_png)
    if args.json:
        _print_json(summary)
    else:
        print(
            f"frames {summary['frames']}: pass {summary['passed']}, reject {summary['rejected']}, uncertain {summary['uncertain']}, "
            f"fault {summary['fault']}, late {summary['late']}; {summary['throughput_fps']:.0f} frames/s "
            f"({summary['throughput_vs_raw']:.0%} of the backend's raw {summary['backend_raw_fps']:.0f}/s); "
            f"p99 latency {summary['latency_ms']['p99']:.1f} ms; archived {summary['archived']}; audit verified {summary['audit_verified']}"
        )
    for message in summary["warnings"]:
        print(f"warning: {message}", file=sys.stderr)
    if summary["alarms"] and not args.json:
        more = f" (and {summary['alarms_total'] - 1} more alarms; --json lists them)" if summary["alarms_total"] > 1 else ""
        print(f"warning: line alarm: {summary['alarms'][0]}{more}", file=sys.stderr)
    recovered = summary.get("recovered_in_flight", {}).get("sequences")
    if recovered:
        print(f"warning: {len(recovered)} items of lot {summary['recovered_in_flight']['lot']} (sequences {recovered[0]}.."
              f"{recovered[-1]}) had no record when the station last stopped; archived as faults, treat them as "
              "rejected and review the deviation", file=sys.stderr)
    errors = station_run_errors(summary, config.archive.path)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    ok = summary["balanced"] and not errors
    return 0 if ok else 1


def station_run_errors(summary: dict, archive_path: Path | None) -> list[str]:
    """What went wrong in a finished run, one message each; any of them fails the run (exit 1).
    Every item still has its record and outcome; these say which outcomes the line could not act on."""
    errors = []
    if summary["audit_verified"] is False:
        errors.append(f"the archive failed its audit check after this run: {summary['audit_first_bad']}. Quarantine it and "
                      f"open a deviation (`inspection audit verify {archive_path}` names every problem).")
    if summary.get("archive_failure"):
        # From the failure on the gate rejects every pass; passes it had already published whose records were
        # still queued left without their record, and are missing from the batch record.
        sequences = summary.get("unarchived_sequences") or []
        span = f" (sequences {sequences[0]} to {sequences[-1]})" if sequences else ""
        released = summary.get("unarchived_passed_sequences") or []
        if released:
            fate = (f"{len(released)} of them passed the reject gate before the failure was known (sequences "
                    f"{_sequence_list(released)}): segregate that product. Every later pass was rejected as a fault")
        else:
            fate = "None of them was released: every pass from the failure on was rejected as a fault"
        errors.append(f"{summary['unarchived']} items have no archive record{span}: {summary['archive_failure']}. {fate}. "
                      "Fix the archive's disk before restarting.")
    elif summary["unarchived"]:
        errors.append(f"{summary['unarchived']} items have no archive record; the next start records them as faults.")
    gate = summary["gate"]
    if gate["publish_failures"]:
        # The station recorded them as faults, but the line never got their answer.
        errors.append(f"{gate['publish_failures']} items were not signalled to the PLC (recorded as faults): treat them as "
                      "rejected and check the PLC connection; the alarms in the summary say when.")
    if gate["missed_gate"]:
        # Recorded as faults too, but they went past the reject gate unsignalled: a reject among them was not removed.
        errors.append(f"{gate['missed_gate']} items passed the reject gate before their result could fire (recorded as "
                      "faults): segregate the product that passed the gate then (the missed_gate alarms name the items) "
                      "and check what delayed the station.")
    return errors


def _sequence_list(sequences: list[int], listed: int = 10) -> str:
    """'3, 4, 9' for a few numbers; '3, 4, 9, ... 81 (25 in all)' for many."""
    if len(sequences) <= listed:
        return ", ".join(map(str, sequences))
    return f"{', '.join(map(str, sequences[:listed - 1]))}, ... {sequences[-1]} ({len(sequences)} in all)"


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from station.archive import raise_if_bad, verify_archive

    result = verify_archive(Path(args.archive))
    raise_if_bad(result)
    print(f"ok: {args.archive} intact: {result.records_checked} records, {result.dispositions_checked} dispositions, "
          f"{result.images_checked} images checked")
    return 0


def cmd_audit_report(args: argparse.Namespace) -> int:
    from station.archive import write_lot_report

    from inspection.bundle import ensure_not_in_bundle

    out = args.out or Path(args.archive) / "reports"
    ensure_not_in_bundle(out, "--out")
    for path in write_lot_report(Path(args.archive), args.lot, out, strict=True):
        print(path)
    return 0


# ----------------------------------------------------------------------------- export / bench


def cmd_export(args: argparse.Namespace) -> int:
    if args.tensorrt:
        from training.tensorrt_export import export_tensorrt

        record = export_tensorrt(args.bundle, args.precision, args.calib, args.max_batch, args.allow_parity_failure,
                                 progress=not args.json)
    elif args.precision == "int8":
        from training.export_int8 import export_int8

        if args.calib is None:
            raise ConfigError("--precision int8 needs --calib DATA: the images to calibrate on and to check parity with.")
        record = export_int8(args.bundle, args.calib, args.allow_parity_failure, progress=not args.json)
    elif args.precision == "fp16":
        raise ConfigError("--precision fp16 exports only a TensorRT engine: add --tensorrt. (The torch CUDA backend runs "
                          "fp16 from the bundle as it is: set the station's backend precision to fp16.)")
    else:
        raise ConfigError("nothing to export: model.onnx already is the fp32 model. "
                          "Pass --tensorrt to build an engine, or --precision int8 --calib DATA for an int8 model.")
    if args.json:
        _print_json(record)
    else:
        print(f"{args.bundle} resealed (sha256 {record['bundle_hash']})")
    return 0


JSON_TO_STDOUT = "-"


def bench_outputs(json_option: str | None, json_out: Path | None) -> tuple[Path | None, bool]:
    """(the result file, or None for the default name; whether to print the JSON) from `--json [OUT]`
    (the issue's spelling) and `--json-out FILE`."""
    print_json = json_option == JSON_TO_STDOUT
    if json_option is not None and not print_json:
        if json_out is not None:
            raise ConfigError(f"--json {json_option} and --json-out {json_out} both name the result file. Pass one.")
        json_out = Path(json_option)
    if json_out is not None and json_out.suffix != ".json":
        raise ConfigError(f"the result file {json_out} does not end in .json (its .md and .png are written beside it). "
                          "Pass a .json file name.")
    return json_out, print_json


def cmd_bench(args: argparse.Namespace) -> int:
    from training.bench.report import read_previous

    if args.compare is not None:
        read_previous(args.compare)  # a bad comparison file fails now, not after the benchmark
    json_out, print_json = bench_outputs(args.json, args.json_out)
    # The suite loads torch and the backends (seconds): only once the options are known good.
    from training.bench.machine import machine_slug
    from training.bench.report import partial_path, write_partial, write_results
    from training.bench.suite import run_suite

    def out_for(result: dict) -> Path:
        return json_out or Path("benchmarks/results") / f"bench_{machine_slug(result['machine'])}_{'-'.join(args.backends)}.json"

    def keep_partial(result_so_far: dict) -> None:
        # Beside the result, not in it: a run stopped by a time limit (a lent GPU's) still leaves its rows.
        write_partial(result_so_far, out_for(result_so_far))

    result = run_suite(args.models, args.backends, args.precisions, args.batch_sizes, args.budget_s, args.image_size,
                       args.threads, args.station_frames, not args.no_training, args.cache, progress=not print_json,
                       on_row=keep_partial)
    out = out_for(result)
    paths = write_results(result, out, args.compare)
    partial_path(out).unlink(missing_ok=True)
    if print_json:
        _print_json(result)
    else:
        print("\n".join(str(p) for p in paths))
    for regression in result.get("regressions", []):
        print(f"regression: {regression['key']} {regression['before']} -> {regression['now']} images/s", file=sys.stderr)
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of whole numbers, e.g. 1,8,64") from None


# ----------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from training.demo import run_demo

    summary = run_demo(Path(args.workdir), fresh=args.fresh, progress=not args.json)
    if args.json:
        _print_json(summary)
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="inspection", description="Inline visual inspection: train, verify and run defect classifiers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="datasets: index a folder, synthesize line images, make a defined set").add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data.add_parser("index", help="write the manifest of a folder-per-class dataset")
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, help="manifest file (default: ./<root name>.manifest.jsonl; never written into ROOT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_data_index)
    p = data.add_parser("synth", help="write a synthetic folder-per-class dataset of tablet images",
                        formatter_class=_SynthHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, required=True, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="224", metavar="PX|WxH",
                   help="square image side in px (default 224), or WIDTHxHEIGHT for frames the size of the line's camera, e.g. 640x480")
    p.add_argument("--product", default="mixed", metavar="NAME", help="(the products are listed when help is shown)")
    p.add_argument("--png-level", type=int, metavar="0-9",
                   help="zlib level of the PNG files: 0 (default) stores them, fastest to write and read; "
                        "1 halves their size but takes 1.4 ms more per 224 px image to write and to read")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_data_synth)
    p = data.add_parser("make", help="make the synthetic dataset a definition names (datasets/*.yaml), unless it is already made")
    p.add_argument("definition", type=Path, help="a dataset definition, e.g. datasets/quality-seed1.yaml")
    p.add_argument("--out", type=Path, help="folder for the images (default: generated/<name> beside the definition)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_data_make)
    p = data.add_parser("export", help="write a training-ready folder-per-class copy with the labels of the labeling tool")
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True, help="new folder for the copy")
    p.add_argument("--workspace", type=Path, help="labeling workspace (default: the one `inspection label DATA` uses)")
    p.set_defaults(handler=cmd_data_export)

    p = commands.add_parser("label", help="the labeling and review tool for quality engineers (web app, login required)")
    p.add_argument("data", type=Path, help="dataset folder (may be read-only; nothing is written into it)")
    p.add_argument("--archive", type=Path, help="station archive to review by exception")
    p.add_argument("--users", type=Path, help="users file (default: $XDG_DATA_HOME/inspection/users.yaml)")
    p.add_argument("--bundle", type=Path, help="model bundle for predictions, uncertainty filters and heatmaps")
    p.add_argument("--workspace", type=Path, help="folder for labels and caches (default: $XDG_DATA_HOME/inspection/labeling/<DATA>-<hash>)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=7860)
    p.add_argument("--rescan", action="store_true", help="index DATA again to pick up new images")
    p.set_defaults(handler=cmd_label)

    users = commands.add_parser("users", help="accounts of the labeling tool").add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = users.add_parser("add", help="add a user; the password is read twice from the terminal (or two lines of stdin)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=("labeler", "reviewer", "admin"))
    p.add_argument("--full-name", help="printed name for e-signatures (default: NAME)")
    p.add_argument("--users", type=Path, help="users file (default: $XDG_DATA_HOME/inspection/users.yaml)")
    p.set_defaults(handler=cmd_users_add)

    p = commands.add_parser("train", help="train a classifier and write a sealed model bundle")
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--model", help="torchvision classifier name (default mobilenet_v3_small)")
    p.add_argument("--image-size", type=_positive_int, help="model input size in px (default 128)")
    p.add_argument("--item-crop", metavar="FRACTION|none",
                   help="square crop centred on the item, as a share of the frame's short side (default 0.6); none: the whole frame")
    p.add_argument("--shrink", choices=("box_then_linear", "area"),
                   help="how a frame shrinks to the model's size: box_then_linear (default: block means by the whole factor, "
                        "then bilinear; 5x faster at the station) or area (OpenCV's INTER_AREA at any factor)")
    p.add_argument("--no-orientation-average", action="store_true",
                   help="serve one view per item instead of the mean over its 8 orientations (8x cheaper at the station)")
    p.add_argument("--good-vs-defect-weight", type=float, metavar="W",
                   help="weight of the loss term on the defect score the station decides on (default 1; 0: cross-entropy only)")
    p.add_argument("--hard-example-boost", type=float, metavar="B",
                   help="draw each epoch's images with chances 1 + min(loss / mean loss, B), each image's loss as last seen "
                        "(default 4; 0: every image once per epoch, shuffled)")
    p.add_argument("--epochs", type=int, help="at most this many epochs (default 100)")
    p.add_argument("--budget-s", metavar="SECONDS|none",
                   help="train fewer epochs where --epochs would not fit this many seconds at the first epoch's pace "
                        "(default 570: 10 minutes with 5%% to spare); none: always --epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--weights", type=Path, help="local state dict to start from (nothing is downloaded)")
    p.add_argument("--seed", type=int)
    p.add_argument("--good", help="comma-separated good classes (default: good or normal)")
    p.add_argument("--max-escape-rate", type=float, help="target escape rate for calibration (default 0.005)")
    p.add_argument("--resume", action="store_true", help="continue from BUNDLE.checkpoints/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_train)

    p = commands.add_parser("eval", help="evaluate a bundle on a dataset split")
    p.add_argument("bundle", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_eval)

    bundle = commands.add_parser("bundle", help="model bundles: verify, import").add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    p = bundle.add_parser("verify", help="check every file of a bundle against its SHA-256 manifest (exit 1 when not intact)")
    p.add_argument("bundle", type=Path)
    p.set_defaults(handler=cmd_bundle_verify)
    p = bundle.add_parser("import", help="wrap an external ONNX classifier into a bundle")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--classes", required=True, help="comma-separated class names in output order")
    p.add_argument("--good", required=True, help="comma-separated good classes")
    p.add_argument("--size", type=int, help="input size in px (default: read from the model)")
    p.add_argument("--mean", type=_floats, default=None, help="per-channel mean in 0..1 (default ImageNet)")
    p.add_argument("--std", type=_floats, default=None, help="per-channel std in 0..1 (default ImageNet)")
    p.add_argument("--resize", choices=("stretch", "letterbox", "center_crop"), default="stretch")
    p.add_argument("--item-crop", metavar="FRACTION|none", default="none",
                   help="square crop centred on the item, as a share of the frame's short side, taken before --resize "
                        "(default none: the whole frame, as most external models were trained)")
    p.add_argument("--shrink", choices=("area", "box_then_linear"), default="area",
                   help="how frames shrink to --size: area (default: OpenCV's INTER_AREA, close to the antialiased resize most "
                        "training pipelines use) or box_then_linear (block means then bilinear; 5x faster at the station)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=cmd_bundle_import)

    station = commands.add_parser("station", help="run an inspection station").add_subparsers(dest="station_command", required=True, metavar="ACTION")
    p = station.add_parser("run", help="run a station from CONFIG.yaml, or quickly from --bundle and --source")
    p.add_argument("config", type=Path, nargs="?", help="station YAML (see station/examples/)")
    p.add_argument("--bundle", type=Path)
    p.add_argument("--source", help="a folder of images, a video file, synthetic, pylon, a camera index or a stream URL")
    p.add_argument("--rate", type=float, help="items per second (default: as fast as the station can)")
    p.add_argument("--archive", type=Path, help="archive folder (default: none)")
    p.add_argument("--frames", type=_positive_int, help="stop after N frames")
    p.add_argument("--duration-s", type=_positive_float, help="stop after S seconds")
    p.add_argument("--latency-png", type=Path, help="write a capture-to-decision latency histogram here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_station_run)

    p = commands.add_parser("export", help="add an int8 model or a TensorRT engine to a bundle (parity-gated)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--tensorrt", action="store_true", help="build a TensorRT engine for this GPU (needs tensorrt)")
    p.add_argument("--precision", choices=PRECISION_NAMES, default="fp32")
    p.add_argument("--calib", type=Path, help="dataset for int8 calibration (train split) and the parity gate (val split)")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch of the engine's optimization profile")
    p.add_argument("--allow-parity-failure", action="store_true", help="keep a model that fails its parity gate (recorded)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("bench", help="backend, station and training throughput on this machine")
    p.add_argument("--models", type=_names, default=("mobilenet_v3_small", "resnet18"))
    p.add_argument("--backends", type=_names, default=("onnxruntime", "torch", "tensorrt"))
    p.add_argument("--precisions", type=_precisions, default=PRECISION_NAMES)
    p.add_argument("--batch-sizes", type=_positive_ints, default=(1, 8, 64))
    p.add_argument("--budget-s", type=_positive_float, default=120.0, help="seconds for the backend matrix, shared by its rows")
    p.add_argument("--image-size", type=_positive_int, default=224)
    p.add_argument("--threads", type=_positive_int, help="CPU threads for the backends (default: the runtime's own; "
                   "in the station rows, per inference worker)")
    p.add_argument("--station-frames", type=_positive_int, default=3000)
    p.add_argument("--no-training", action="store_true", help="skip the training-throughput rows")
    p.add_argument("--cache", type=Path, default=Path("runs/bench"), help="where benchmark bundles are kept")
    p.add_argument("--compare", type=Path, help="previous result JSON (default: the file being replaced)")
    p.add_argument("--json", nargs="?", const=JSON_TO_STDOUT, default=None, metavar="OUT",
                   help="--json OUT: the result file (default: benchmarks/results/bench_<machine>_<backends>.json; "
                   "its .md and .png beside it); --json alone: also print the result JSON on stdout")
    p.add_argument("--json-out", type=Path, help="the result file, as --json OUT")
    p.set_defaults(handler=cmd_bench)

    audit = commands.add_parser("audit", help="the station archive's audit trail").add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = audit.add_parser("verify", help="check the hash chain and every image (exit 1 naming the first bad record)")
    p.add_argument("archive", type=Path)
    p.set_defaults(handler=cmd_audit_verify)
    p = audit.add_parser("report", help="write the batch report of a lot (HTML and CSV, exceptions only)")
    p.add_argument("archive", type=Path)
    p.add_argument("--lot", required=True)
    p.add_argument("--out", type=Path, help="folder for the report (default: ARCHIVE/reports)")
    p.set_defaults(handler=cmd_audit_report)

    p = commands.add_parser("demo", help="the whole chain on synthetic line data, on the CPU")
    p.add_argument("--workdir", type=Path, default=Path("runs/demo"),
                   help="work folder (default runs/demo); the demo marks it and replaces its own outputs there on each run")
    p.add_argument("--fresh", action="store_true", help="regenerate the synthetic data even if present")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: args.handler(args))


def run_guarded(entry: Callable[[], int | None]) -> int:
    """Run a command's body under the project's error contract (also used by the benchmark scripts):
    our errors and the OS's become one line on stderr and an exit code, never a traceback."""
    try:
        return entry() or 0
    except InspectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # Disk full, read-only folder, permission denied: the OS message plus the file is the one line.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Check the path, its permissions and the free disk space.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
