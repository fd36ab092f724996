"""Where the command line writes: the two consoles, and one line for an expected failure."""

from __future__ import annotations

import os
import sys
from typing import Final, TextIO

from rich.console import Console
from rich.markup import escape

from xdrsync.errors import ConfigError, XdrSyncError

#: The width of a table written to a pipe or a file. Rich's default there is 80 columns, in
#: which `incidents list`, `state show` and the others cut their values short ("2026-12-…",
#: "conto…") or fold a title over lines: what a script or `grep` reads was lost. A table
#: takes only the width its values need, so this is a bound, not a size.
PIPED_WIDTH: Final = 4096


def _width(stream: TextIO | None) -> int | None:
    """None (rich's own choice: the terminal's width, or $COLUMNS when set) on a terminal or
    when $COLUMNS says; ``PIPED_WIDTH`` otherwise."""
    isatty = getattr(stream, "isatty", None)  # no stream at all under pythonw
    if os.environ.get("COLUMNS") or (callable(isatty) and isatty()):
        return None
    return PIPED_WIDTH


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def _json_logs() -> bool:
    """Whether ``--log-json`` is in force: every line on stderr must then be a JSON object."""
    from xdrsync.logs import configured

    return configured()[1]


def print_error(message: str) -> None:
    """``error: message``; brackets in ``message`` (a path, a query) are shown, not styled.
    Under ``--log-json``, an ``error`` log event instead."""
    if _json_logs():
        import structlog

        structlog.get_logger("xdrsync").error(message)
        return
    err_console.print(f"[red]error:[/red] {escape(message)}")


def notice(message: str, **fields: object) -> None:
    """A line for the operator on stderr (``message`` shown as is, never read as markup);
    under ``--log-json``, an ``info`` log event with ``fields``, so that a log shipper reads
    nothing but JSON there."""
    if _json_logs():
        import structlog

        structlog.get_logger("xdrsync").info(message, **fields)
        return
    err_console.print(message, markup=False)


def report_failure(error: XdrSyncError) -> int:
    """Print ``error`` as one line, secrets scrubbed; the exit code: 2 for what the operator
    must fix (config, credentials, permissions), 1 for the rest."""
    from xdrsync.logs import scrub

    print_error(scrub(str(error)))
    return 2 if isinstance(error, ConfigError) else 1


__all__ = ["console", "err_console", "notice", "print_error", "report_failure"]
