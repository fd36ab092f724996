"""Bounds on the KQL constructs that make big data out of a short query.

Most work a query does is over the workspace tables and DuckDB stops it at the time or memory
limit. A few constructs are different: duckdb-kql renders `range` as
`UNNEST(generate_series(...))`, which builds the whole series as ONE list value, and `strrep`
as `repeat()`, one string. DuckDB can neither interrupt nor account for that single value
(measured: a 100,000,000-row `range` took 33 s under a 1 s limit and 7 GB under a 64 MiB one).
So their size is decided from the query text before it runs: their bounds must be literals
(numbers, `datetime()`, timespans, `now()`, `ago()`, sums of those) within the caps below.
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


__all__ = ["MAX_RANGE_ROWS", "MAX_STRREP", "generator_problems", "range_rows"]
