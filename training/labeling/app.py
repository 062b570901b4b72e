"""The Gradio app of `inspection label`: login, the Label, Review and Users tabs, and the server launch.

Security: every page and API call needs a login (Gradio auth backed by LoginGuard); roles are
checked again in each action; the server binds 127.0.0.1 unless told otherwise; files are served
only from DATA, the archive's images and the workspace's caches (Gradio refuses any other path),
and the users file, the catalog and the access log are blocked explicitly.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import gradio as gr

from training.labeling.browse import ItemFilter, page
from training.labeling.context import AppContext
from training.labeling.label_tab import KEYBOARD_JS, build_label_tab
from training.labeling.predictions import predict_missing
from training.labeling.review_tab import build_review_tab
from training.labeling.users import PERMISSIONS, Permission

CSS = "#label-image img { width: 100%; height: 100%; object-fit: contain; } #item-info { font-size: 1.05em; }"


def start_predictions(ctx: AppContext) -> threading.Thread | None:
    if ctx.bundle is None:
        return None
    thread = threading.Thread(target=predict_missing, args=(ctx.catalog, ctx.bundle, ctx.backend), name="predictions", daemon=True)
    thread.start()
    return thread


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="Inspection labeling and review", analytics_enabled=False) as app:
        with gr.Row():
            who = gr.Markdown(elem_id="who")
            gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="logout")
        with gr.Tabs():
            with gr.Tab("Label", id="label"):
                label_load, label_outputs = build_label_tab(ctx)
            with gr.Tab("Review", id="review"):
                review_load, review_outputs = build_review_tab(ctx)
            with gr.Tab("Users", id="users"):
                users_table = gr.Dataframe(headers=["user", "role", "full name", "created (UTC)"], interactive=False, elem_id="users-table")
                gr.Markdown("Add users with `inspection users add NAME --role labeler|reviewer|admin --users USERS.yaml`.")

        def identify(request: gr.Request) -> str:
            entry = ctx.users().users.get(request.username or "")
            role = entry.role.value if entry else "unknown"
            return f"Logged in as **{request.username}** ({role}) · {ctx.catalog.count():,} images · workspace `{ctx.catalog.workspace.root}`"

        def list_users(request: gr.Request) -> list[list[Any]]:
            users = ctx.users()
            entry = users.users.get(request.username or "")
            if entry is None or Permission.USERS not in PERMISSIONS[entry.role]:
                return [["(only an admin sees the user list)", "", "", ""]]
            return [[name, u.role.value, u.full_name, u.created_utc] for name, u in sorted(users.users.items())]

        app.load(identify, outputs=[who])
        app.load(label_load, outputs=label_outputs)
        if review_outputs:
            app.load(review_load, outputs=review_outputs)
        app.load(list_users, outputs=[users_table])
    return app


def launch(ctx: AppContext, host: str, port: int, block: bool = True) -> gr.Blocks:
    app = build_app(ctx)
    workspace = ctx.catalog.workspace
    allowed = [str(workspace.data_root), str(workspace.thumbs_dir), str(workspace.root / "previews"), str(workspace.heatmaps_dir), str(workspace.imports_dir)]
    if ctx.review is not None:
        allowed.append(str(ctx.review.archive_root / "images"))
    blocked = [str(ctx.guard.users_path), str(workspace.catalog_path), str(workspace.access_log), str(workspace.root / "workspace.json")]
    _prepare_server(ctx)
    app.queue(default_concurrency_limit=4)
    app.launch(
        server_name=host, server_port=port, auth=ctx.guard.check, auth_message="Inspection labeling: log in with your own account.",
        allowed_paths=allowed, blocked_paths=blocked, prevent_thread_lock=not block, quiet=True, show_error=False,
        head=KEYBOARD_JS, css=CSS, footer_links=[], ssr_mode=False, enable_monitoring=False, mcp_server=False,
    )  # fmt: skip
    return app


def _prepare_server(ctx: AppContext) -> None:
    """Work done once before the first browser arrives, so that the first page does not wait for it."""
    import matplotlib

    # Gradio wraps every event in matplotlib.get_backend(); with no backend chosen yet, the first event
    # imports pyplot (about 1 s, on the server's event loop, stalling every other request meanwhile).
    matplotlib.use("agg")
    # Gradio's queue rebuilds a pandas summary of up to 10,000 past events after every event (for a
    # monitoring page this app turns off), holding the label tab's one slot: every 1,000th is plenty.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    workspace = ctx.catalog.workspace
    # Content-addressed thumbnails and previews and the never-modified dataset images are served from
    # where they are, instead of Gradio hashing and copying each file shown into its own cache first.
    # They are in allowed_paths already; the login check and blocked_paths still apply to them.
    gr.set_static_paths([workspace.data_root, workspace.thumbs_dir, workspace.root / "previews"])
    threading.Thread(target=_preload_first_page, args=(ctx,), name="preload-first-page", daemon=True).start()


def _preload_first_page(ctx: AppContext) -> None:
    """The first page of the default view, thumbnails made and the catalog pages warm in SQLite's cache."""
    first = page(ctx.catalog, ItemFilter(bundle_hash=ctx.bundle_hash), 0, ctx.page_size)
    ctx.thumbnails.prefetch([(i.sha256, ctx.catalog.file_path(i), i.width, i.height) for i in ctx.catalog.items(first.item_ids)])


def serve(ctx: AppContext, host: str, port: int) -> None:
    """Run the app on a context that `server_context.open_context` has checked, until Ctrl+C."""
    start_predictions(ctx)
    print(f"labeling tool on http://{host}:{port} (workspace {ctx.catalog.workspace.root}); Ctrl+C stops it", flush=True)
    try:
        launch(ctx, host, port, block=True)
    finally:
        ctx.manifest.close()
