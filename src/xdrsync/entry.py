"""The ``xdrsync`` program: `xdrsync query` takes its short path (`cli_query.quick`) when it
can, every other command the typer app (`cli.app`)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from xdrsync import collector

        collector.tune()
        if sys.argv[1:2] == ["query"]:
            from xdrsync.cli_query import quick

            code = quick(sys.argv[2:])
            if code is not None:
                sys.exit(code)
        from xdrsync.cli import app

        app()
    except KeyboardInterrupt:  # Ctrl-C before a command took charge of it (while importing)
        sys.exit(130)
