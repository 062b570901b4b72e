"""The Review tab: review by exception of a lot, dispositions with a reason, heatmaps, lot sign-off, export.

Handlers only translate between widgets and ReviewService, which checks roles and writes the
archive's audit trail; a refusal comes back as the status line, never as a half-done action.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import gradio as gr

from inspection.errors import InspectionError
from inspection.image_io import read_image
from station.archive import APPROVED_MEANING
from training.labeling.context import AppContext, ReviewSelection
from training.labeling.handlers import event_handler
from training.labeling.heatmap import occlusion_heatmap, overlay
from training.labeling.review import Action, ExceptionItem
from training.labeling.errors import PermissionDenied


def build_review_tab(ctx: AppContext) -> tuple[Callable[[gr.Request], list[Any]], list[Any]]:
    if ctx.review is None:
        gr.Markdown("No archive given: start with `inspection label DATA --archive ARCHIVE` to review a lot.")
        return (lambda request: []), []
    with gr.Row():
        lot = gr.Dropdown([], label="Lot", elem_id="review-lot", scale=3)
        refresh = gr.Button("Refresh", size="sm", scale=1, elem_id="review-refresh")
    grid = gr.Gallery(label="Exceptions: rejected, uncertain, fault and late items", columns=8, height=240, allow_preview=False, elem_id="review-grid")
    with gr.Row():
        image = gr.Image(type="filepath", interactive=False, label="Archived image (lossless)", height=320, elem_id="review-image")
        heat = gr.Image(type="filepath", interactive=False, label="Occlusion heatmap (red: drove the defect score)", height=320, elem_id="review-heatmap")
        with gr.Column():
            detail = gr.Markdown("Select an exception above.", elem_id="review-detail")
    with gr.Row():
        action = gr.Radio([a.value for a in Action], value=Action.CONFIRM.value, label="Disposition", elem_id="review-action")
        new_class = gr.Dropdown([], label="New defect class (re-label)", allow_custom_value=True, elem_id="review-new-class")
        reason = gr.Textbox(label="Reason (required)", elem_id="review-reason")
        submit = gr.Button("Record disposition", variant="primary", elem_id="review-submit")
    status = gr.Markdown(elem_id="review-status")
    with gr.Accordion("Lot sign-off (electronic signature)", open=True):
        gr.Markdown(
            f"Signing records your name, the UTC time and the meaning **“{APPROVED_MEANING}”**, bound to the hashes of "
            "every record and disposition of this lot in the audit trail. Re-enter your password to sign."
        )
        with gr.Row():
            password = gr.Textbox(type="password", label="Password", elem_id="sign-password", scale=3)
            sign = gr.Button("Sign lot", variant="stop", elem_id="sign-button", scale=1)
        signatures = gr.Markdown(elem_id="signatures-info")
    with gr.Row():
        good_class = gr.Dropdown([], label="Good class in the dataset", elem_id="export-good-class")
        export = gr.Button("Export overturned and re-labeled items to the dataset", elem_id="export-button")

    outputs = [lot, grid, image, heat, detail, status, signatures, new_class, good_class, password]

    def render(selection: ReviewSelection, message: str = "") -> list[Any]:
        lots = ctx.review.lots()
        if selection.lot not in lots:
            selection.lot, selection.key = (lots[0] if lots else None), None
        items = ctx.review.exceptions(selection.lot) if selection.lot else []
        chosen = next((i for i in items if i.key == selection.key), None)
        gallery = [(_thumbnail(ctx, i), _caption(i)) for i in items if i.image_sha256]
        classes = sorted(set(ctx.catalog.classes()) | set(ctx.bundle.meta.class_names if ctx.bundle else ()))
        goods = [c for c in classes if c in (ctx.bundle.meta.good_classes if ctx.bundle else ("good", "normal"))]
        return [
            gr.update(choices=lots, value=selection.lot),
            gallery,
            str(ctx.review.image_path(chosen)) if chosen and chosen.image_sha256 else None,
            _heatmap(ctx, chosen) if chosen else None,
            _describe(chosen) if chosen else f"{len(items)} exception(s) in lot {selection.lot}; select one above.",
            message,
            _signatures(ctx, selection.lot) if selection.lot else "",
            gr.update(choices=classes),
            gr.update(choices=classes, value=goods[0] if goods else None),
            "",  # the password never stays in the form
        ]

    def handler(action_fn: Callable[..., str | None]) -> Callable[..., list[Any]]:
        return event_handler(ctx.review_selection, render, action_fn)

    def on_load(request: gr.Request) -> list[Any]:
        return render(ctx.review_selection(request.session_hash))

    def choose_lot(selection: ReviewSelection, user: str, name: str) -> None:
        selection.lot, selection.key = name, None

    def current(selection: ReviewSelection) -> ExceptionItem:
        item = next((i for i in ctx.review.exceptions(selection.lot) if i.key == selection.key), None) if selection.lot else None
        if item is None:
            raise InspectionError("select an exception first (click its image above).")
        return item

    def dispose(selection: ReviewSelection, user: str, action_value: str, class_name: str | None, why: str) -> str:
        item = current(selection)
        ctx.review.dispose(ctx.users(), user, item, Action(action_value), why, class_name)
        return f"Recorded: {action_value} for {item.key} by {user}."

    def sign_lot(selection: ReviewSelection, user: str, secret: str) -> str:
        if not selection.lot:
            raise InspectionError("choose a lot first.")
        try:
            entry_hash = ctx.review.sign_lot(ctx.users(), user, secret, selection.lot)
        except PermissionDenied:
            ctx.guard.log_refusal(user, f"sign lot {selection.lot}")
            raise
        return f"Lot **{selection.lot}** signed by {user} (audit entry {entry_hash[:16]}…)."

    def export_items(selection: ReviewSelection, user: str, good: str | None) -> str:
        if not selection.lot or not good:
            raise InspectionError("choose a lot and the dataset's good class first.")
        added = ctx.review.export_to_dataset(ctx.users(), user, selection.lot, ctx.catalog, good)
        ctx.manifest.changed()
        return f"{added} item(s) of lot {selection.lot} added to the dataset (workspace imports/)."

    def on_select(event: gr.SelectData, request: gr.Request) -> list[Any]:
        def pick(selection: ReviewSelection, user: str) -> None:
            with_images = [i for i in ctx.review.exceptions(selection.lot) if i.image_sha256] if selection.lot else []
            if 0 <= event.index < len(with_images):
                selection.key = with_images[event.index].key

        return handler(pick)(request)

    common = dict(outputs=outputs, concurrency_limit=1, concurrency_id="review", show_progress="hidden")
    lot.input(handler(choose_lot), inputs=[lot], **common)
    refresh.click(handler(lambda selection, user: None), **common)
    grid.select(on_select, **common)
    submit.click(handler(dispose), inputs=[action, new_class, reason], **common)
    sign.click(handler(sign_lot), inputs=[password], **common)
    export.click(handler(export_items), inputs=[good_class], **common)
    return on_load, outputs


def _caption(item: ExceptionItem) -> str:
    now = f" → {item.current_verdict}" if item.dispositions else ""
    return f"#{item.sequence} {item.verdict} {item.defect_class or ''}{now}"


def _thumbnail(ctx: AppContext, item: ExceptionItem) -> str:
    return str(ctx.thumbnails.get(item.image_sha256, ctx.review.image_path(item)))


def _heatmap(ctx: AppContext, item: ExceptionItem) -> str | None:
    if ctx.bundle is None or item.image_sha256 is None:
        return None
    path = ctx.heatmap_dir() / f"{item.image_sha256}-{ctx.bundle.bundle_hash[:16]}.png"
    if not path.is_file():
        image = read_image(ctx.review.image_path(item))
        heat, _ = occlusion_heatmap(image, ctx.bundle, ctx.backend)
        rgb = overlay(image, heat, ctx.bundle.meta.input)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def _describe(item: ExceptionItem) -> str:
    scores = " · ".join(f"{name} {value:.3f}" for name, value in sorted(item.scores.items(), key=lambda kv: -kv[1]))
    lines = [
        f"**{item.station} #{item.sequence}** · captured {item.captured_utc}",
        f"station verdict **{item.verdict}** · defect class **{item.defect_class or '—'}**",
        f"reason: {item.reason}",
        f"scores: {scores or '(none)'}",
        f"current: **{item.current_verdict}** {item.current_defect_class or ''}",
    ]
    for d in item.dispositions:
        lines.append(f"- {d['utc']} **{d['user']}**: {d['old_verdict']} → {d['new_verdict']} {d['new_defect_class'] or ''} — “{d['reason']}”")
    return "\n\n".join(lines)


def _signatures(ctx: AppContext, lot: str) -> str:
    rows = ctx.review.signatures(lot)
    if not rows:
        return "Not signed yet."
    return "\n\n".join(f"Signed by **{s['full_name']}** ({s['user']}) at {s['utc']} UTC — “{s['meaning']}”, {s['lot_entries']} entries bound." for s in rows)
