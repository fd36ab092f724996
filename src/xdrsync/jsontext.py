"""Compact JSON text, fast: orjson where it can, the standard library where orjson refuses.

orjson writes what ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` writes
(same escapes, same number spelling), several times faster. It refuses integers beyond 64
bits, non-text keys and lone UTF-16 surrogates; those values go through the standard library,
so the result never depends on which encoder wrote it (surrogates come out as JSON escapes,
so the text is always valid UTF-8). Datetimes always go to ``default``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class UnreadableItem:
    """One element of a listing's ``value`` that could not be read as JSON on its own
    (e.g. nested deeper than any parser allows): its exact text and why. A source hands it
    over in place of the record, so the sync engine quarantines it and keeps the rest."""

    raw: str
    reason: str


class UnreadableRecord(dict[str, Any]):
    """A record read whole from its listing that cannot be taken as it is (an incident whose
    alerts cannot all be read): the sync engine quarantines it with ``reason``, while its
    ``lastUpdateDateTime`` still steers paging past it, as any record's does."""

    def __init__(self, record: Mapping[str, Any], reason: str) -> None:
        super().__init__(record)
        self.reason = reason


def dumps(
    value: Any,
    *,
    default: Callable[[Any], Any] = str,
    sort_keys: bool = False,
    replace_surrogates: bool = False,
) -> str:
    """Compact JSON text of ``value``; ``default`` turns what JSON lacks into what it has.
    ``replace_surrogates``: lone surrogates become U+FFFD instead of escapes (for stores,
    such as DuckDB, whose JSON reader refuses even the escapes)."""
    data = dumps_utf8(
        value, default=default, sort_keys=sort_keys, replace_surrogates=replace_surrogates
    )
    return data.decode("utf-8")


def dumps_utf8(
    value: Any,
    *,
    default: Callable[[Any], Any] = str,
    sort_keys: bool = False,
    replace_surrogates: bool = False,
) -> bytes:
    """`dumps` as UTF-8, without decoding orjson's bytes and encoding them again (for text
    written to a file)."""
    option = orjson.OPT_PASSTHROUGH_DATETIME | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, default=default, option=option)
    except orjson.JSONEncodeError:
        return _standard(value, default, sort_keys, replace_surrogates).encode("utf-8")


def orjson_utf8(value: Any, *, default: Callable[[Any], Any] = str) -> bytes | None:
    """`dumps_utf8`'s text when orjson writes it, else None (the standard library's would
    then differ in places, such as ``1e-07`` for orjson's ``1e-7``): for a caller that joins
    such texts into a larger one and must know they came from one encoder."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        return None


def _standard(
    value: Any, default: Callable[[Any], Any], sort_keys: bool, replace_surrogates: bool
) -> str:
    """What orjson refused, through the standard library (see the module)."""
    text = json.dumps(
        value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, default=default
    )
    if _encodable(text):
        return text
    if replace_surrogates:
        return without_surrogates(text)
    # Lone UTF-16 surrogates (Windows file names allow them) cannot be UTF-8: written as
    # ``\udc00`` escapes, the text is valid everywhere and parses back to the same value.
    return json.dumps(
        value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=True, default=default
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (in a Python string, every surrogate is one)
    replaced by U+FFFD, for stores that cannot hold them."""
    return _SURROGATE.sub("\ufffd", text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A number of 19 digits or more: possibly an integer beyond 64 bits, which orjson reads as a
# float. With every digit mapped to "0", each run of 19 digits is found by a plain substring
# search, all in C; a digit run is rare in Graph JSON, and most are inside strings (hex hashes
# and ids). Only each run's start is then looked at: a JSON number starts a document or follows
# `:`, `,` or `[` (and whitespace), with an optional `-`. A run inside a string that happens to
# follow one of them only sends that text to the standard library.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = b"0" * 19
_WHITESPACE = frozenset(b" \t\r\n")
_BEFORE_NUMBER = frozenset(b":,[")
_MINUS = ord("-")


def _may_hold_long(data: bytes | bytearray) -> bool:
    zeros = data.translate(_DIGITS_AS_ZERO)
    at = zeros.find(_DIGIT_RUN)
    while at >= 0:
        i = at - 1
        if i >= 0 and data[i] == _MINUS:
            i -= 1
        while i >= 0 and data[i] in _WHITESPACE:
            i -= 1
        if i < 0 or data[i] in _BEFORE_NUMBER:
            return True
        # Past this run's first 19 digits: a longer run's next find is preceded by a digit.
        at = zeros.find(_DIGIT_RUN, at + len(_DIGIT_RUN))
    return False


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSON text (orjson, or the standard library for what orjson refuses or would
    round: integers beyond 64 bits stay exact)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _may_hold_long(data):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


__all__ = [
    "UnreadableItem",
    "UnreadableRecord",
    "dumps",
    "dumps_utf8",
    "loads",
    "without_surrogates",
]
