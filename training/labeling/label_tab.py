"""The Label tab: one image at a time with keyboard labeling, a paged thumbnail grid, filters, bulk assign.

Keys (see KEYBOARD_JS): 1-9 assign the class on that button and move on, arrow keys move, z or
Ctrl+Z undoes this session's last change. Every change goes through Catalog.assign/undo, which
append to the label history; the manifest is rewritten in the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gradio as gr

from training.labeling.browse import ANY, UNLABELED, ItemFilter, Order, Page, item_at, page
from training.labeling.catalog import Item
from training.labeling.context import AppContext, LabelSession
from training.labeling.handlers import event_handler
from training.labeling.predictions import prediction_of
from training.labeling.thumbnails import BROWSER_FORMATS, ThumbnailCache
from training.labeling.users import Permission

SLOTS = 9

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

    shown_outputs = [image, info, status, grid, page_info, history, selection]
    outputs = [*shown_outputs, bulk_class, label_filter, predicted_filter, *slots]

    def render(session: LabelSession, message: str = "", full: bool = True) -> list[Any]:
        """The outputs of an event; with full=False only `shown` (no class buttons or dropdowns: every gr.update,
        even gr.skip(), makes Gradio rebuild that component on the server, which key presses need not pay for)."""
        classes = ctx.catalog.classes()
        # One page query gives the grid, the current image and the total (no second COUNT for the image alone).
        start, grid_page = _page_of(ctx, session)
        total = grid_page.total
        page_items = ctx.catalog.items(grid_page.item_ids)
        item = page_items[session.position - start] if session.position - start < len(page_items) else None
        if grid_page.item_ids != session.shown_page or message:
            session.shown_page = grid_page.item_ids
            thumbs = ctx.thumbnails.get_many([_thumbnail_request(ctx, i) for i in page_items])
            grid_value: Any = [(thumb, _caption(i, session)) for thumb, i in zip(thumbs, page_items)]
            _prefetch_next_page(ctx, session, start + ctx.page_size)
        else:
            grid_value = gr.skip()
        if item is not None:
            _prefetch_preview(ctx, previews, session, start, page_items)
        pages = max(1, -(-total // ctx.page_size))
        shown = [
            _display_path(ctx, previews, item) if item else None,
            _describe(ctx, item, session.position, total) if item else "**No images match these filters.**",
            message,
            grid_value,
            f"Page {start // ctx.page_size + 1} of {pages} · {total:,} images",
            _history_rows(ctx, item) if item else [],
            f"{len(session.selection)} selected" if session.selection else "Nothing selected (click thumbnails to select)",
        ]
        if not full:
            return shown
        slot_updates = [gr.update(value=f"{n} {name}", visible=True) if n <= len(classes) else gr.update(visible=False)
                        for n, name in zip(range(1, SLOTS + 1), classes + [""] * SLOTS)]  # fmt: skip
        class_updates = [gr.update(choices=classes), gr.update(choices=[ANY, UNLABELED, *classes]),
                         gr.update(choices=[ANY, *(ctx.bundle.meta.class_names if ctx.bundle else ())])]  # fmt: skip
        return [*shown, *class_updates, *slot_updates]

    def handler(action: Callable[..., str | None]) -> Callable[..., list[Any]]:
        return event_handler(ctx.session, render, action)

    def nav_handler(action: Callable[..., str | None]) -> Callable[..., list[Any]]:
        return event_handler(ctx.session, lambda session, message: render(session, message, full=False), action)

    def on_load(request: gr.Request) -> list[Any]:
        session = ctx.session(request.session_hash)
        session.shown_page = None  # a (re)loaded page shows no grid yet
        return render(session)

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

    common = dict(concurrency_limit=1, concurrency_id="label", show_progress="hidden")
    full, nav = dict(outputs=outputs, **common), dict(outputs=shown_outputs, **common)
    filters = [label_filter, split_filter, predicted_filter, order]
    for dropdown in filters:
        dropdown.input(handler(set_filter), inputs=filters, **full)
    prev_button.click(nav_handler(move(-1)), **nav)
    next_button.click(nav_handler(move(+1)), **nav)
    undo_button.click(nav_handler(undo), **nav)
    for n, button in enumerate(slots, start=1):
        button.click(nav_handler(assign_slot(n)), **nav)

    def on_select(event: gr.SelectData, request: gr.Request) -> list[Any]:
        return nav_handler(lambda session, user: select(session, user, event))(request)

    grid.select(on_select, **nav)
    bulk_assign.click(nav_handler(assign_selection), inputs=[bulk_class], **nav)
    clear_selection.click(nav_handler(clear), **nav)
    add_class.click(handler(add), inputs=[new_class], **full)
    prev_page.click(nav_handler(page_step(-1)), **nav)
    next_page.click(nav_handler(page_step(+1)), **nav)
    return on_load, outputs


def _caption(item: Item, session: LabelSession) -> str:
    mark = "✓ " if item.id in session.selection else ""
    return f"{mark}{item.label or UNLABELED}"


def _page_of(ctx: AppContext, session: LabelSession) -> tuple[int, Page]:
    """(offset, page) of the grid page holding session.position, clamping the position to the filtered total."""
    start = session.position // ctx.page_size * ctx.page_size
    grid_page = page(ctx.catalog, session.item_filter, start, ctx.page_size)
    last = max(grid_page.total - 1, 0)
    if session.position > last:  # the filter shrank (or a key press ran past the end): show the last image
        session.position = last
        start = last // ctx.page_size * ctx.page_size
        grid_page = page(ctx.catalog, session.item_filter, start, ctx.page_size)
    return start, grid_page


def _thumbnail_request(ctx: AppContext, item: Item) -> tuple[str, Path, int | None, int | None]:
    return item.sha256, ctx.catalog.file_path(item), item.width, item.height


def _prefetch_next_page(ctx: AppContext, session: LabelSession, offset: int) -> None:
    """Make the next page's thumbnails in the background while the user looks at this one."""
    next_page = page(ctx.catalog, session.item_filter, offset, ctx.page_size)
    if next_page.offset == offset and next_page.item_ids:
        ctx.thumbnails.prefetch([_thumbnail_request(ctx, i) for i in ctx.catalog.items(next_page.item_ids)])


def _prefetch_preview(ctx: AppContext, previews: ThumbnailCache, session: LabelSession, start: int, page_items: list[Item]) -> None:
    """A format the browser cannot show needs a JPEG preview: make the next image's before the user asks for it."""
    following = session.position + 1 - start
    if following < len(page_items):
        item = page_items[following]
        path = ctx.catalog.file_path(item)
        if path.suffix.lower() not in BROWSER_FORMATS:
            previews.prefetch([(item.sha256, path, None, None)])


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
