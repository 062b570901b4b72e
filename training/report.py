"""The validation report written beside a model bundle: figures, report.md and report.html.

Escapes (defective items that passed) come first, and the curves mark the station's own operating
points. Figures use `matplotlib.figure.Figure` directly: no pyplot, no global figure registry, no
dependence on the process's backend."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from inspection.errors import DataError

MAX_WORST_TILES = 16
DPI = 110
Table = tuple[list[str], list[list[str]]]  # (header, rows) of one report section
FIGURES = [("Confusion matrix", "confusion.png"), ("Precision-recall and ROC", "pr_roc.png"), ("Worst cases", "worst.png")]


def write_validation_report(
    out_dir: Path,
    *,
    title: str,
    metrics: dict,
    class_names: list[str],
    good_classes: list[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    verdicts: list[str],
    image_paths: list[Path],
    calibration: dict,
    load_image: Callable[[Path], np.ndarray],
) -> list[Path]:
    """Write confusion.png, pr_roc.png, worst.png, report.md and report.html; return their paths."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n = len(y_true)
    if probabilities.shape != (n, len(class_names)) or len(verdicts) != n or len(image_paths) != n:
        raise DataError(
            f"report inputs disagree: y_true has {n} items, probabilities {probabilities.shape}, "
            f"{len(verdicts)} verdicts, {len(image_paths)} image paths, {len(class_names)} classes; "
            "pass the same N items to every argument"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    good_mask = np.array([name in good_classes for name in class_names])
    scores = 1.0 - probabilities[:, good_mask].sum(axis=1)
    is_defective = ~good_mask[y_true]

    figures = {
        "confusion.png": _confusion_figure(metrics["confusion"], good_classes),
        "pr_roc.png": _pr_roc_figure(scores, is_defective, calibration),
        "worst.png": _worst_figure(
            _worst_tiles(class_names, y_true, probabilities, scores, is_defective, verdicts, image_paths), load_image
        ),
    }
    written = []
    for name, fig in figures.items():
        fig.savefig(out_dir / name, dpi=DPI)
        written.append(out_dir / name)
    sections = _sections(metrics, calibration, good_classes)
    (out_dir / "report.md").write_text(_markdown(title, sections), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(title, sections), encoding="utf-8")
    return written + [out_dir / "report.md", out_dir / "report.html"]


def write_confusion_png(confusion: dict, good_classes: list[str], path: Path) -> Path:
    """The confusion matrix ({labels, matrix}, as `inspection eval --json` gives it) as a PNG at `path`."""
    _confusion_figure(confusion, good_classes).savefig(path, dpi=DPI)
    return Path(path)


def _confusion_figure(confusion: dict, good_classes: list[str]) -> Figure:
    labels = list(confusion["labels"])
    counts = np.asarray(confusion["matrix"], dtype=np.int64).reshape(len(labels), len(labels))
    row_sums = counts.sum(axis=1, keepdims=True)
    # Colour by row fraction so a rare defect class with poor recall stands out as much as a common one.
    fractions = np.divide(counts, row_sums, out=np.zeros(counts.shape), where=row_sums > 0)
    c = len(labels)
    side = max(4.5, 0.75 * c + 2.5)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    font = 10  # the figure grows with the class count, so the font need not shrink
    for i in range(c):
        for j in range(c):
            colour = "white" if fractions[i, j] > 0.5 else ("black" if counts[i, j] else "0.6")
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=font, color=colour)
    # Rotated column labels: side by side, long class names would run into each other.
    rotate = c > 3 or max(len(name) for name in labels) > 8
    rotation = {"rotation": 40, "ha": "right", "rotation_mode": "anchor"} if rotate else {}
    ax.set_xticks(range(c), labels, fontsize=font, **rotation)
    ax.set_yticks(range(c), labels, fontsize=font)
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        if label.get_text() in good_classes:
            label.set_color("tab:green")
    ax.set_xlabel("predicted class (good classes in green)")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix (counts; N={int(counts.sum())})")
    return fig


def _curves(scores: np.ndarray, positive: np.ndarray) -> dict:
    """ROC and precision-recall points, one per distinct score, from the highest threshold down."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_positive = scores[order], positive[order]
    # The last index of each run of equal scores: tied items cross a threshold together.
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tp = np.cumsum(sorted_positive)[last].astype(np.float64)
    fp = np.cumsum(~sorted_positive)[last].astype(np.float64)
    recall, fpr = tp / positive.sum(), fp / (~positive).sum()
    precision = tp / (tp + fp)
    fpr, recall = np.r_[0.0, fpr], np.r_[0.0, recall]
    # Average precision as a step sum over recall increments (no interpolation), the usual definition.
    ap = float(np.sum(np.diff(recall) * precision))
    auc = float(np.trapezoid(recall, fpr))
    return {"fpr": fpr, "tpr": recall, "auc": auc, "recall": recall, "precision": np.r_[1.0, precision], "ap": ap}


def _operating_point(scores: np.ndarray, positive: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(fpr, recall, precision) when every item scoring at or above `threshold` is flagged defective,
    which is how the station decides (a score below the pass threshold passes)."""
    flagged = scores >= threshold
    tp, fp = float((flagged & positive).sum()), float((flagged & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    return fp / (~positive).sum(), tp / positive.sum(), precision


def _pr_roc_figure(scores: np.ndarray, is_defective: np.ndarray, calibration: dict) -> Figure:
    finite = np.isfinite(scores)  # fault rows may carry NaN scores; they have no place on a curve
    scores, positive = scores[finite], is_defective[finite]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        present = "no scored" if n_pos == n_neg else ("only defective" if n_pos else "only good")
        message = (
            f"Precision-recall and ROC: {present} items in this split ({n_pos + n_neg}).\n"
            "Both good and defective items are needed to draw a curve."
        )
        fig = Figure(figsize=(8, 1.6))
        fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)
        return fig

    fig = Figure(figsize=(11, 5), layout="constrained")
    ax_pr, ax_roc = fig.subplots(1, 2)
    fig.suptitle("Defective vs good (defect score = 1 - P(good classes))")
    curves = _curves(scores, positive)
    ax_pr.step(curves["recall"], curves["precision"], where="pre", label=f"AP = {curves['ap']:.4f}")
    ax_pr.axhline(n_pos / (n_pos + n_neg), color="0.6", ls="--", lw=1, label="chance (prevalence)")
    ax_roc.plot(curves["fpr"], curves["tpr"], label=f"AUC = {curves['auc']:.4f}")
    ax_roc.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
    # The pass marker is drawn larger so that it stays visible when both thresholds coincide.
    markers = (("pass_threshold", "o", "tab:orange", 12), ("reject_threshold", "s", "tab:red", 7))
    for key, marker, colour, size in markers:
        if calibration.get(key) is None:
            continue
        threshold = float(calibration[key])
        fpr, recall, precision = _operating_point(scores, positive, threshold)
        label = f"{key.replace('_', ' ')} {threshold:.4g}: recall {recall:.3f}, FPR {fpr:.3f}"
        ax_pr.plot(recall, precision, marker, color=colour, ms=size, mec="black", label=label)
        ax_roc.plot(fpr, recall, marker, color=colour, ms=size, mec="black", label=label)
    ax_pr.set(xlabel="recall (defective items caught)", ylabel="precision", title="Precision-recall")
    ax_roc.set(xlabel="false positive rate (good items flagged)", ylabel="true positive rate (recall)", title="ROC")
    for ax in (ax_pr, ax_roc):
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is ax_pr else "lower right", fontsize=8)
    return fig


def _worst_tiles(
    class_names: list[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    scores: np.ndarray,
    is_defective: np.ndarray,
    verdicts: list[str],
    image_paths: list[Path],
) -> list[tuple[Path, str, bool]]:
    """(image path, caption, is escape) of the worst cases: escapes first, lowest defect score
    (most confidently passed) first, then other misclassified items by the probability given to
    the wrong predicted class."""
    predicted = probabilities.argmax(axis=1)
    escape = is_defective & np.array([v == "pass" for v in verdicts], dtype=bool)
    escapes = np.flatnonzero(escape)
    escapes = escapes[np.argsort(scores[escapes], kind="stable")]
    wrong = np.flatnonzero((predicted != y_true) & ~escape)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")]
    tiles = []
    for i in np.r_[escapes, wrong][:MAX_WORST_TILES]:
        true_name, predicted_name = class_names[y_true[i]], class_names[predicted[i]]
        file_name = Path(image_paths[i]).name
        file_name = file_name if len(file_name) <= 34 else "..." + file_name[-31:]  # keep the unique tail
        p = probabilities[i, predicted[i]]
        caption = f"{true_name} -> {predicted_name} (p={p:.2f}), {verdicts[i]}\n{file_name}"
        tiles.append((Path(image_paths[i]), caption, bool(escape[i])))
    return tiles


def _worst_figure(tiles: list[tuple[Path, str, bool]], load_image: Callable[[Path], np.ndarray]) -> Figure:
    if not tiles:
        fig = Figure(figsize=(4, 1.5))
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=13)
        return fig
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows), layout="constrained")
    fig.suptitle("Worst cases: escapes (red) first, then misclassified items by confidence")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (path, caption, escape) in zip(axes, tiles):
        _draw_tile(ax, path, load_image)
        ax.set_title(caption, fontsize=8, color="tab:red" if escape else "black")
    return fig


def _draw_tile(ax: Axes, path: Path, load_image: Callable[[Path], np.ndarray]) -> None:
    try:
        image = np.asarray(load_image(Path(path)))
    except Exception as error:  # noqa: BLE001 - a missing audit image must not cost the whole report
        message = f"image unavailable:\n{type(error).__name__}"
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=8, transform=ax.transAxes)
        return
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    # Fixed 0..255 range: autoscaling a grey image would exaggerate faint defects and hide others.
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")



def _pct(value: float) -> str:
    percent = 100.0 * value
    # Two significant digits below 0.01% so a rare but real escape never prints as 0.00%.
    return f"{percent:.2f}%" if percent == 0 or percent >= 0.01 else f"{percent:.2g}%"


def _sections(metrics: dict, calibration: dict, good_classes: list[str]) -> list[tuple[str, Table]]:
    """The report content once, rendered by both the Markdown and the HTML writer."""
    m = metrics
    escape = f"{_pct(m['escape_rate'])} ({m['escapes']} of {m['defective_items']})"
    escape += f"; 95% upper bound {_pct(m['escape_rate_upper95'])}"
    false_reject = f"{_pct(m['false_reject_rate'])} ({m['false_rejects']} of {m['good_items']})"
    summary = [
        ["items (N)", str(m["n"])],
        ["accuracy (top-1)", _pct(m["accuracy"])],
        ["escape rate (defective items passed)", escape],
        ["false reject rate (good items off the line)", false_reject],
        ["verdicts", ", ".join(f"{name} {count}" for name, count in m["verdicts"].items())],
    ]
    first = ["pass_threshold", "reject_threshold", "max_escape_rate", "basis"]
    keys = [k for k in first if k in calibration] + [k for k in calibration if k not in first]
    values = [calibration[k] for k in keys]
    calibration_rows = [[k, f"{v:.6g}" if isinstance(v, float) else str(v)] for k, v in zip(keys, values)]
    per_class = [
        [name, "good" if name in good_classes else "defect"]
        + [f"{row['precision']:.4f}", f"{row['recall']:.4f}", str(row["support"])]
        for name, row in m["per_class"].items()
    ]
    return [
        ("Summary", (["metric", "value"], summary)),
        ("Calibration", (["setting", "value"], calibration_rows)),
        ("Per class", (["class", "kind", "precision", "recall", "support"], per_class)),
    ]


def _markdown(title: str, sections: list[tuple[str, Table]]) -> str:
    def row_line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    lines = [f"# Validation report: {title}", ""]
    for heading, (header, rows) in sections:
        lines += [f"## {heading}", "", row_line(header), "|" + "---|" * len(header)]
        lines += [row_line(row) for row in rows] + [""]
    for heading, file_name in FIGURES:
        lines += [f"## {heading}", "", f"![{heading}]({file_name})", ""]
    return "\n".join(lines)


CSS = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; border-bottom: 2px solid #ccc; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; }
th { background: #f0f0f0; } img { max-width: 100%; border: 1px solid #ddd; }"""


def _html(title: str, sections: list[tuple[str, Table]]) -> str:
    esc = html.escape
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Validation report: {esc(title)}</title>\n<style>\n{CSS}\n</style></head><body>",
        f"<h1>Validation report: {esc(title)}</h1>",
    ]
    for heading, (header, rows) in sections:
        parts.append(f"<h2>{esc(heading)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for heading, file_name in FIGURES:
        parts.append(f'<h2>{esc(heading)}</h2><img src="{esc(file_name)}" alt="{esc(heading)}">')
    return "\n".join(parts + ["</body></html>", ""])
