"""`xdrsync query`, and its short path past the command-line framework.

A query is what users run most from a shell or a script, so its answer should come about as
soon as DuckDB has loaded. typer loads pydantic and builds a validator for each parameter,
and the config's pydantic models take as long again: together they doubled the time of a
small query (`bench/results.md`, "query start"). So `entry.main` hands a well-formed
`xdrsync query KQL [--config FILE] [--format FORMAT]` to `quick`, which reads the two
sections a query uses (`configfile.for_query`) and runs it. Anything else (`--help`, an
option written another way, a config `for_query` cannot vouch for) goes to the typer command
in `cli.py`, which writes the help and every usage or config error. Both end in `run_query`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from xdrsync.errors import ConfigError, XdrSyncError
from xdrsync.tables.limits import QueryLimits, QuerySettings
from xdrsync.tables.output import FORMATS, Format, format_result
from xdrsync.terminal import err_console, report_failure

_OPTIONS = {"--config": "config", "-c": "config", "--format": "format"}


def run_query(workspace: Path, limits: QuerySettings, kql: str, output: Format) -> None:
    """Run ``kql`` over the workspace's log tables and print the result to stdout. A
    workspace folder that does not exist is refused, as the hub's readers refuse a missing
    hub: a mistyped path would otherwise answer from an empty, new workspace."""
    from xdrsync.layout import LOG_FILE, make_private
    from xdrsync.tables.logstore import LogStore

    if not workspace.is_dir():
        raise ConfigError(
            f"no workspace at {workspace}: run `xdrsync sync --once` first, or check "
            "[workspace] path"
        )
    make_private(workspace)  # the query may create the log file
    result = LogStore(workspace / LOG_FILE, limits=limits).query(kql)
    sys.stdout.write(format_result(result, output))
    sys.stdout.flush()
    if result.truncation_note and output != "table":  # the table says it under its rows
        err_console.print(f"[yellow]warning:[/yellow] {result.truncation_note}")


def quick(args: Sequence[str]) -> int | None:
    """Run ``xdrsync query`` with these arguments and return its exit code, or None when the
    typer command must take them (see the module's docstring)."""
    from xdrsync.configfile import config_path, for_query, read_config_file
    from xdrsync.logs import register_secrets

    parsed = _parse(args)
    if parsed is None:
        return None
    kql, config_file, output = parsed
    file = config_path(config_file)
    try:
        data = read_config_file(file)
    except XdrSyncError:
        return None
    config = for_query(data, file)
    if config is None:
        return None
    register_secrets(config.secrets)
    try:
        run_query(config.workspace, QueryLimits(**config.query), kql, output)
    except XdrSyncError as failure:
        return report_failure(failure)
    except KeyboardInterrupt:  # Ctrl-C: the typer command's exit, without a traceback
        return 130
    return 0


def _parse(args: Sequence[str]) -> tuple[str, Path | None, Format] | None:
    """(KQL, config file, format) as the typer command would take them, or None for anything
    but one query and at most one each of ``--config``/``-c`` and ``--format``, written as
    ``--option VALUE`` or ``--option=VALUE``."""
    kql: str | None = None
    values: dict[str, str] = {}
    tokens = iter(args)
    for token in tokens:
        if not token.startswith("-"):
            if kql is not None:
                return None
            kql = token
            continue
        name, equals, value = token.partition("=") if token.startswith("--") else (token, "", "")
        key = _OPTIONS.get(name)
        if key is None or key in values:
            return None
        if not equals:
            value = next(tokens, "")
        if not value or value.startswith("-"):
            return None
        values[key] = value
    output = values.get("format", "table")
    if kql is None or output not in FORMATS:
        return None
    config = values.get("config")
    return kql, Path(config) if config is not None else None, output


__all__ = ["quick", "run_query"]
