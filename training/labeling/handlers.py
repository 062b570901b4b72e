"""The one way the tabs turn an action into a Gradio event handler: per-session state in, refusal as a message out."""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from inspection.errors import InspectionError


def event_handler(state_of: Callable[[str], Any], render: Callable[[Any, str], list[Any]], action: Callable[..., str | None]) -> Callable[..., list[Any]]:
    """handler(request, *inputs) -> render(state, message); action(state, user, *inputs) returns the status message.

    The request comes first and positional: Gradio fills parameters annotated gr.Request by position."""

    def run(request: gr.Request, *args: Any) -> list[Any]:
        state = state_of(request.session_hash)
        try:
            message = action(state, request.username, *args) or ""
        except InspectionError as exc:
            message = f"**Refused:** {exc}"
        return render(state, message)

    return run
