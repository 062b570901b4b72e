"""Benchmark results as JSON, a Markdown table and a PNG plot; regressions against a previous JSON."""

from __future__ import annotations

import json
from pathlib import Path

from inspection.errors import ConfigError, first_line
from training.bench.result_file import write_json

REGRESSION_FRACTION = 0.10


def _preparation(station_row: dict) -> str:
    """"8 processes", "1 thread"; rows from before preparer processes name only a thread count."""
    way, count = next(iter(station_row.get("preparation", {"threads": station_row.get("prepare_threads", 1)}).items()))
    return f"{count} {way if count != 1 else way.rstrip('s')}"


def regressions(current: dict, previous: dict) -> list[dict]:
    """Rows whose throughput fell by more than 10% against the same key in `previous`."""
    before = {row["key"]: row for row in previous.get("backends", []) if "images_per_s" in row}
    found = []
    for row in current.get("backends", []):
        old = before.get(row["key"])
        if old is None or "images_per_s" not in row or not old["images_per_s"]:
            continue
        change = row["images_per_s"] / old["images_per_s"] - 1.0
        if change < -REGRESSION_FRACTION:
            found.append({"key": row["key"], "before": old["images_per_s"], "now": row["images_per_s"], "change": round(change, 3)})
    return found


def markdown_table(result: dict) -> str:
    machine = result["machine"]
    lines = [
        f"# Benchmark on {machine['gpu'] or machine['cpu']}",
        "",
        f"CPU: {machine['cpu']}; GPU: {machine['gpu'] or 'none'}; driver {machine.get('driver') or '-'}; "
        f"CUDA {machine.get('cuda') or '-'}; TensorRT {machine['tensorrt'] or 'not installed'}; "
        f"torch {machine['versions'].get('torch')}; onnxruntime {machine['versions'].get('onnxruntime')}. {result['created_utc']}.",
        "",
        *_comparison_lines(result),
        "| model | backend | device | precision | batch | images/s | GPU-resident images/s | p50 ms | p99 ms | note |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["backends"]:
        if "skipped" in row:
            lines.append(f"| {row['model']} | {row['backend']} | {row['device']} | {row['precision']} | {row['batch_size']} | - | - | - | - | skipped: {row['skipped']} |")
        else:
            lat = row["latency_ms"]
            lines.append(f"| {row['model']} | {row['backend']} | {row['device']} | {row['precision']} | {row['batch_size']} | "
                         f"{row['images_per_s']:,.0f} | {_number(row.get('gpu_resident_images_per_s'))} | {lat['p50']:.3f} | "
                         f"{lat['p99']:.3f} | {row['description']} |")
    if result.get("station"):
        lines += ["", "| station (synthetic line, unpaced, no archive) | backend | batch | preparation | station fps | raw fps | ratio |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for s in result["station"]:
            if "failed" in s:
                lines.append(f"| {s['model']} | {s['backend']} {s['device']} {s['precision']} | {s['max_batch']} | "
                             f"{_preparation(s)} | failed: {s['failed']} | - | - |")
                continue
            lines.append(f"| {s['model']} | {s['backend']} {s['device']} {s['precision']} | {s['max_batch']} | {_preparation(s)} | "
                         f"{s['throughput_fps']:,.0f} | {s['backend_raw_fps']:,.0f} | {s['throughput_vs_raw']:.2f} |")
    if result.get("training"):
        lines += ["", "| training | device | batch | loop images/s (augmentation included; after the first epoch) | whole run images/s | forward+backward images/s |",
                  "|---|---|---:|---:|---:|---:|"]
        for t in result["training"]:
            lines.append(f"| {t['model']} {t['size_px']} px | {t['device']} | {t['batch_size']} | {t['loop_images_per_s']:,.0f} | "
                         f"{t['run_images_per_s']:,.0f} | {t['compute_images_per_s']:,.0f} |")
    if result.get("regressions"):
        lines += ["", "Regressions over 10% against the previous result:", ""]
        lines += [f"- {r['key']}: {r['before']:,.0f} -> {r['now']:,.0f} images/s ({r['change']:+.0%})" for r in result["regressions"]]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["backends"] if "images_per_s" in r]
    if not rows:
        return
    labels = [f"{r['model']}\n{r['backend']} {r['precision']} b{r['batch_size']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows)), 4.5))
    ax.bar(range(len(rows)), [r["images_per_s"] for r in rows], color="#3b6ea5")
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("images/s (log)")
    ax.set_title(f"backend throughput on {result['machine']['gpu'] or result['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _comparison_lines(result: dict) -> list[str]:
    if "compared_with" not in result:
        return []
    other = f" (another machine: {result['compared_machine']})" if result.get("compared_machine") else ""
    return [f"Compared with {result['compared_with']}{other}: {len(result.get('regressions', []))} regressions over "
            f"{REGRESSION_FRACTION:.0%}.", ""]


def _machine_name(machine: dict) -> str | None:
    return machine.get("gpu") or machine.get("cpu")


def read_previous(path: Path) -> dict:
    """An earlier result JSON to compare with; checked before a benchmark runs, so a bad one costs nothing."""
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--compare {path} cannot be read as a result JSON ({first_line(exc)}). Pass an earlier "
                          "`inspection bench` result, or leave it out.") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("backends", []), list):
        raise ConfigError(f"--compare {path} is not an `inspection bench` result. Pass an earlier result JSON, or leave it out.")
    return earlier


def partial_path(out_json: Path) -> Path:
    return Path(out_json).with_name(Path(out_json).stem + ".partial.json")


def write_partial(result_so_far: dict, out_json: Path) -> Path:
    """The rows measured so far, as JSON beside the result file (removed once the result is written)."""
    path = partial_path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**result_so_far, "partial": True})
    return path


def write_results(result: dict, out_json: Path, previous: Path | None) -> list[Path]:
    """Write JSON, Markdown and PNG side by side; compare with `previous` (default: the file being replaced)."""
    out_json = Path(out_json)
    compare_with = previous if previous is not None else (out_json if out_json.is_file() else None)
    if compare_with is not None:
        earlier = read_previous(Path(compare_with))
        result["compared_with"] = str(compare_with)
        result["regressions"] = regressions(result, earlier)
        if _machine_name(earlier.get("machine") or {}) != _machine_name(result["machine"]):
            result["compared_machine"] = _machine_name(earlier.get("machine") or {})  # another machine's figures
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md, png = out_json.with_suffix(".md"), out_json.with_suffix(".png")
    md.write_text(markdown_table(result), encoding="utf-8")
    plot(result, png)
    return [out_json, md, png]
