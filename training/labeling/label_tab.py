"""The Label tab: one image at a time with keyboard labeling, a paged thumbnail grid, filters, bulk assign.

Keys (see KEYBOARD_JS): 1-9 assign the class on that button and move on, arrow keys move, z or
Ctrl+Z undoes this session's last change. Every change goes through Catalog.assign/undo, which
append to the label history; the manifest is rewritten in the background.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from training.labeling.browse import ANY, UNLABELED, ItemFilter, Order, item_at, page
from training.labeling.catalog import Item
from training.labeling.context import AppContext, LabelSession
from training.labeling.handlers import event_handler
from training.labeling.predictions import prediction_of
from training.labeling.thumbnails import ThumbnailCache
from training.labeling.users import Permission

SLOTS = 9
BROWSER_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}

KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.isContentEditable)) return;
  let id = null;
  if ((event.ctrlKey || event.metaKey) && event.key === 'z') id = 'undo-button';
  else if (event.ctrlKey || event.metaKey || event.altKey) return;
  else if (/^[1-9]$/.test(event.key)) id = 'class-slot-' + event.key;
  else if (event.key === 'ArrowRight') id = 'next-button';
  else if (event.key === 'ArrowLeft') id = 'prev-button';
  else if (event.key === 'z') id = 'undo-button';
  const button = id && document.getElementById(id);
  // offsetParent is null while the Label tab is hidden: keys act only on the visible tab.
  if (button && button.offsetParent !== null && !button.disabled) { button.click(); event.preventDefault(); }
});
</script>
"""


def build_label_tab(ctx: AppContext) -> Callable[[gr.Request], list[Any]]:
    """Lay out the tab inside the current gr.Blocks and wire its events; returns the on-load handler."""
    previews = ThumbnailCache(ctx.catalog.workspace.root / "previews", size_px=1024)
    prediction_filters = ctx.bundle is not None
    with gr.Row():
        label_filter = gr.Dropdown([ANY, UNLABELED], value=ANY, label="Label", elem_id="filter-label")
        split_filter = gr.Dropdown([ANY, "train", "val", "test"], value=ANY, label="Split", elem_id="filter-split")
        predicted_filter = gr.Dropdown([ANY], value=ANY, label="Predicted class", visible=prediction_filters, elem_id="filter-predicted")
        order = gr.Dropdown([o.value for o in Order] if prediction_filters else [Order.PATH.value], value=Order.PATH.value, label="Order", elem_id="filter-order")
    with gr.Row():
        with gr.Column(scale=3):
            image = gr.Image(type="filepath", interactive=False, show_label=False, height=420, elem_id="label-image")
            info = gr.Markdown(elem_id="item-info")
            with gr.Row():
                prev_button = gr.Button("← Previous", elem_id="prev-button", size="sm")
                next_button = gr.Button("Next →", elem_id="next-button", size="sm")
                undo_button = gr.Button("Undo (z)", elem_id="undo-button", size="sm")
            with gr.Row():
                slots = [gr.Button(f"{i}", elem_id=f"class-slot-{i}", size="sm", visible=False) for i in range(1, SLOTS + 1)]
            status = gr.Markdown(elem_id="label-status")
        with gr.Column(scale=2):
            history = gr.Dataframe(headers=["utc", "user", "old", "new", "action"], label="Label history of this image", interactive=False, elem_id="label-history")
            with gr.Row():
                new_class = gr.Textbox(label="New class", placeholder="e.g. scratched", scale=3, elem_id="new-class")
                add_class = gr.Button("Add class", scale=1, elem_id="add-class")
            selection = gr.Markdown(elem_id="selection-info")
            with gr.Row():
                bulk_class = gr.Dropdown([], label="Assign the selection to", scale=3, elem_id="bulk-class")
                bulk_assign = gr.Button("Assign selection", scale=1, elem_id="bulk-assign")
                clear_selection = gr.Button("Clear selection", scale=1, elem_id="clear-selection")
    page_info = gr.Markdown(elem_id="page-info")
    grid = gr.Gallery(label="Page (click to open and select)", columns=8, height=380, allow_preview=False, object_fit="contain", elem_id="label-grid")
    with gr.Row():
        prev_page = gr.Button("← Page", size="sm", elem_id="prev-page")
        next_page = gr.Button("Page →", size="sm", elem_id="next-page")

    outputs = [image, info, status, grid, page_info, history, selection, bulk_class, label_filter, predicted_filter, *slots]

    def render(session: LabelSession, message: str = "") -> list[Any]:
        classes = ctx.catalog.classes()
        item_id, total = item_at(ctx.catalog, session.item_filter, session.position)
        session.position = min(session.position, max(total - 1, 0))
        item = ctx.catalog.item(item_id) if item_id is not None else None
        start = session.position // ctx.page_size * ctx.page_size
        grid_page = page(ctx.catalog, session.item_filter, start, ctx.page_size)
        if grid_page.item_ids != session.shown_page or message:
            session.shown_page = grid_page.item_ids
            grid_value: Any = [(ctx.thumbnails.get(i.sha256, ctx.catalog.file_path(i)), _caption(i, session)) for i in ctx.catalog.items(grid_page.item_ids)]
        else:
            grid_value = gr.skip()
        pages = max(1, -(-total // ctx.page_size))
        slot_updates = [gr.update(value=f"{n} {name}", visible=True) if n <= len(classes) else gr.update(visible=False)
                        for n, name in zip(range(1, SLOTS + 1), classes + [""] * SLOTS)]  # fmt: skip
        return [
            _display_path(ctx, previews, item) if item else None,
            _describe(ctx, item, session.position, total) if item else "**No images match these filters.**",
            message,
            grid_value,
            f"Page {start // ctx.page_size + 1} of {pages} · {total:,} images",
            _history_rows(ctx, item) if item else [],
            f"{len(session.selection)} selected" if session.selection else "Nothing selected (click thumbnails to select)",
            gr.update(choices=classes),
            gr.update(choices=[ANY, UNLABELED, *classes]),
            gr.update(choices=[ANY, *(ctx.bundle.meta.class_names if ctx.bundle else ())]),
            *slot_updates,
        ]

    def handler(action: Callable[..., str | None]) -> Callable[..., list[Any]]:
        return event_handler(ctx.session, render, action)

    def on_load(request: gr.Request) -> list[Any]:
        return render(ctx.session(request.session_hash))

    def set_filter(session: LabelSession, user: str, label: str, split: str, predicted: str, order_value: str) -> None:
        session.item_filter = ItemFilter(label or ANY, split or ANY, predicted or ANY, Order(order_value or Order.PATH), ctx.bundle_hash)
        session.position = 0
        session.shown_page = None

    def move(step: int) -> Callable[[LabelSession, str], None]:
        def run(session: LabelSession, user: str) -> None:
            session.position = max(0, session.position + step)

        return run

    def assign_slot(slot: int) -> Callable[[LabelSession, str], str]:
        def run(session: LabelSession, user: str) -> str:
            ctx.require(user, Permission.LABEL)
            classes = ctx.catalog.classes()
            item_id, _ = item_at(ctx.catalog, session.item_filter, session.position)
            if item_id is None or slot > len(classes):
                return "Nothing to label here."
            changed = ctx.catalog.assign([item_id], classes[slot - 1], user)
            session.undo.extend((history_id, session.position) for history_id in changed)
            ctx.manifest.changed()
            # Move on; when the labeled image left the filter (e.g. "unlabeled"), the next one took its place.
            if item_at(ctx.catalog, session.item_filter, session.position)[0] == item_id:
                session.position += 1
            return f"{ctx.catalog.item(item_id).path} → **{classes[slot - 1]}**" if changed else "Label unchanged."

        return run

    def undo(session: LabelSession, user: str) -> str:
        ctx.require(user, Permission.LABEL)
        if not session.undo:
            return "Nothing to undo in this session."
        history_id, position = session.undo.pop()
        ctx.catalog.undo(history_id, user)
        ctx.manifest.changed()
        session.position = position  # back to the image whose label was undone
        return f"Undid change {history_id}."

    def select(session: LabelSession, user: str, event: gr.SelectData) -> None:
        if session.shown_page is None or not 0 <= event.index < len(session.shown_page):
            return
        item_id = session.shown_page[event.index]
        session.position = session.position // ctx.page_size * ctx.page_size + event.index
        session.selection.symmetric_difference_update({item_id})
        session.shown_page = None

    def assign_selection(session: LabelSession, user: str, name: str) -> str:
        ctx.require(user, Permission.LABEL)
        if not session.selection or not name:
            return "Select images and a class first."
        changed = ctx.catalog.assign(sorted(session.selection), name, user, action="bulk")
        session.undo.extend((history_id, session.position) for history_id in changed)
        session.selection.clear()
        ctx.manifest.changed()
        return f"{len(changed)} image(s) → **{name}**"

    def clear(session: LabelSession, user: str) -> None:
        session.selection.clear()
        session.shown_page = None

    def add(session: LabelSession, user: str, name: str) -> str:
        ctx.require(user, Permission.LABEL)
        ctx.catalog.add_class(name, user)
        return f"Class **{name.strip()}** added."

    def page_step(step: int) -> Callable[[LabelSession, str], None]:
        def run(session: LabelSession, user: str) -> None:
            session.position = max(0, (session.position // ctx.page_size + step) * ctx.page_size)

        return run

    common = dict(outputs=outputs, concurrency_limit=1, concurrency_id="label", show_progress="hidden")
    filters = [label_filter, split_filter, predicted_filter, order]
    for dropdown in filters:
        dropdown.input(handler(set_filter), inputs=filters, **common)
    prev_button.click(handler(move(-1)), **common)
    next_button.click(handler(move(+1)), **common)
    undo_button.click(handler(undo), **common)
    for n, button in enumerate(slots, start=1):
        button.click(handler(assign_slot(n)), **common)

    def on_select(event: gr.SelectData, request: gr.Request) -> list[Any]:
        return handler(lambda session, user: select(session, user, event))(request)

    grid.select(on_select, **common)
    bulk_assign.click(handler(assign_selection), inputs=[bulk_class], **common)
    clear_selection.click(handler(clear), **common)
    add_class.click(handler(add), inputs=[new_class], **common)
    prev_page.click(handler(page_step(-1)), **common)
    next_page.click(handler(page_step(+1)), **common)
    return on_load, outputs


def _caption(item: Item, session: LabelSession) -> str:
    mark = "✓ " if item.id in session.selection else ""
    return f"{mark}{item.label or UNLABELED}"


def _display_path(ctx: AppContext, previews: ThumbnailCache, item: Item) -> str:
    path = ctx.catalog.file_path(item)
    if path.suffix.lower() in BROWSER_FORMATS:
        return str(path)
    return str(previews.get(item.sha256, path))  # TIFF, BMP, 16-bit: an 8-bit JPEG preview the browser can show


def _describe(ctx: AppContext, item: Item, position: int, total: int) -> str:
    by = f" (by {item.labeled_by})" if item.labeled_by and item.labeled_by != "folder" else ""
    text = f"**{position + 1:,} / {total:,}** · `{item.path}` · label **{item.label or UNLABELED}**{by} · split {item.split}"
    if ctx.bundle is not None:
        prediction = prediction_of(ctx.catalog, item.sha256, ctx.bundle.bundle_hash)
        text += (f" · predicted **{prediction.predicted}** ({prediction.confidence:.2f}, uncertainty {prediction.uncertainty:.2f})"
                 if prediction else " · prediction pending")  # fmt: skip
    return text


def _history_rows(ctx: AppContext, item: Item) -> list[list[Any]]:
    return [[h["utc"], h["user"], h["old_label"] or "", h["new_label"], h["action"]] for h in ctx.catalog.history(item.id)[-8:]]
