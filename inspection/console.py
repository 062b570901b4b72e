"""Human-facing output goes to stderr, so that `--json` leaves stdout to exactly one JSON object."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, ProgressColumn

stderr_console = Console(stderr=True)


def progress_bar(*columns: str | ProgressColumn, enabled: bool = True, transient: bool = False) -> Progress:
    # Off a terminal rich draws nothing until the end, and a transient bar then leaves only an empty
    # line on stderr, before the warnings and errors that must be its only lines.
    quiet = transient and not stderr_console.is_terminal
    return Progress(*columns, console=stderr_console, disable=not enabled or quiet, transient=transient)


def warn(message: str) -> None:
    stderr_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
