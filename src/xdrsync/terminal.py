"""Where the command line writes: the two consoles, and one line for an expected failure."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from xdrsync.errors import ConfigError, XdrSyncError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """``error: message``; brackets in ``message`` (a path, a query) are shown, not styled."""
    err_console.print(f"[red]error:[/red] {escape(message)}")


def report_failure(error: XdrSyncError) -> int:
    """Print ``error`` as one line, secrets scrubbed; the exit code: 2 for what the operator
    must fix (config, credentials, permissions), 1 for the rest."""
    from xdrsync.logs import scrub

    print_error(scrub(str(error)))
    return 2 if isinstance(error, ConfigError) else 1


__all__ = ["console", "err_console", "print_error", "report_failure"]
