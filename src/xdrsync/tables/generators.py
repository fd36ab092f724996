"""Bounds on the KQL constructs that make big data out of a short query.

Most work a query does is over the workspace tables and DuckDB stops it at the time or memory
limit. A few constructs are different: duckdb-kql renders `range` as
`UNNEST(generate_series(...))`, which builds the whole series as ONE list value, and `strrep`
as `repeat()`, one string. DuckDB can neither interrupt nor account for that single value
(measured: a 100,000,000-row `range` took 33 s under a 1 s limit and 7 GB under a 64 MiB one).
So their size is decided from the query text before it runs: their bounds must be literals
(numbers, `datetime()`, timespans, `now()`, `ago()`, sums of those) within the caps below.

A `strrep` multiplier within its cap still multiplies whatever it repeats: nested calls, or a
long column value, made one value of gigabytes from a short query (`strrep(strrep(strrep(
"abcdefgh", 1024), 1024), 256)` is 2 GiB: 9 s under a 1 s limit, 4 GiB under a 64 MiB one). So
its result is bounded too (`MAX_STRREP_BYTES`): refused here when the text shows it (literals
and the `strrep`s of them), and checked where it runs for everything else (`let` names, column
values; `sqlpatch`), where a result over the bound fails the query at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

from duckdb_kql import ir
from duckdb_kql.params import as_datetime, parse_timespan

#: Rows one `range` may generate (a list of 1,000,000 values is ~8 MB and ~0.1 s).
MAX_RANGE_ROWS: Final = 1_000_000
#: Kusto's own cap on `strrep`'s multiplier.
MAX_STRREP: Final = 1024
#: The longest string one `strrep` may make (64 characters repeated 1024 times). The bound is on
#: each value, and DuckDB works on 2,048 rows at a time, so a column's `strrep` holds at most
#: 128 MiB of them at once (measured: 1 s for 20,000 such rows, where a 1 MiB bound took 36 s
#: and 4 GiB).
MAX_STRREP_BYTES: Final = 64 * 1024

Value = float | datetime | timedelta


def _value(expr: ir.Expr, now: datetime) -> Value | None:
    """The value of a constant expression, or None when it is not one we can evaluate."""
    if isinstance(expr, ir.Literal):
        if expr.kind in ("long", "int", "real", "decimal") and isinstance(expr.value, int | float):
            return float(expr.value)
        if expr.kind == "timespan" and isinstance(expr.value, str):
            return parse_timespan(expr.value)
        if expr.kind == "datetime" and isinstance(expr.value, str):
            try:
                return as_datetime(expr.value, "range")
            except Exception:  # any unreadable literal is "not a constant"
                return None
        return None
    if isinstance(expr, ir.UnaryOp) and expr.op == "-":
        inner = _value(expr.operand, now)
        return -inner if isinstance(inner, float | timedelta) else None
    if isinstance(expr, ir.FunctionCall):
        if expr.name == "now" and not expr.args:
            return now
        if expr.name == "ago" and len(expr.args) == 1:
            span = _value(expr.args[0], now)
            return now - span if isinstance(span, timedelta) else None
        return None
    if isinstance(expr, ir.BinaryOp) and expr.op in ("+", "-"):
        left, right = _value(expr.left, now), _value(expr.right, now)
        if isinstance(left, float) and isinstance(right, float):
            return left + right if expr.op == "+" else left - right
        if isinstance(left, datetime | timedelta) and isinstance(right, timedelta):
            return left + right if expr.op == "+" else left - right
        return None
    return None


def range_rows(source: ir.RangeSource, now: datetime | None = None) -> int | None:
    """How many rows `source` generates, or None when its bounds are not constants."""
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    start, stop, step = (_value(e, moment) for e in (source.start, source.stop, source.step))
    if isinstance(start, float) and isinstance(stop, float) and isinstance(step, float):
        span, stride = stop - start, step
    elif isinstance(start, datetime) and isinstance(stop, datetime) and isinstance(step, timedelta):
        span, stride = (stop - start).total_seconds(), step.total_seconds()
    else:
        return None
    if stride == 0:
        return None
    if span / stride < 0:
        return 0
    return int(span / stride) + 1


def _text_bytes(expr: ir.Expr) -> int | None:
    """The length in bytes (UTF-8) of a string literal, or of the `strrep`s of one; None for
    anything else (its length shows only when the query runs)."""
    if isinstance(expr, ir.Literal):
        return len(expr.value.encode()) if isinstance(expr.value, str) else None
    if isinstance(expr, ir.FunctionCall) and expr.name == "strrep" and len(expr.args) == 2:
        inner = _text_bytes(expr.args[0])
        count = _value(expr.args[1], datetime.now(UTC))
        if inner is not None and isinstance(count, float):
            return inner * max(int(count), 0)
    return None


def generator_problems(node: ir.Node) -> Iterator[str]:
    """Why `node` (a source or an expression) would generate more than its cap."""
    if isinstance(node, ir.RangeSource):
        rows = range_rows(node)
        if rows is None:
            yield (
                "range needs constant bounds and a non-zero step (numbers, datetime(), "
                "timespans, now(), ago())"
            )
        elif rows > MAX_RANGE_ROWS:
            yield f"range would generate {rows:,} rows; at most {MAX_RANGE_ROWS:,} are allowed"
    elif isinstance(node, ir.FunctionCall) and node.name == "strrep":
        count = _value(node.args[1], datetime.now(UTC)) if len(node.args) > 1 else None
        if not isinstance(count, float) or count > MAX_STRREP:
            yield f"strrep needs a constant multiplier of at most {MAX_STRREP}"
        elif (size := _text_bytes(node)) is not None and size > MAX_STRREP_BYTES:
            yield (
                f"strrep would make a string of {size:,} bytes; "
                f"at most {MAX_STRREP_BYTES:,} are allowed"
            )


__all__ = [
    "MAX_RANGE_ROWS",
    "MAX_STRREP",
    "MAX_STRREP_BYTES",
    "generator_problems",
    "range_rows",
]
