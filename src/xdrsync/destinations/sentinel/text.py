"""Sentinel's length limits, measured as Sentinel measures them, and visible cuts.

ARM is a .NET service: a string's length is its number of UTF-16 code units, so a character
outside the Basic Multilingual Plane (an emoji) counts twice. Measuring that way keeps every
text we send within the limit whichever way the server counts; a cut never splits a surrogate
pair.

Text also has to be UTF-8 on the wire: a lone UTF-16 surrogate (which Graph's JSON may carry
as ``\\ud800``) is shown as U+FFFD, the same length in UTF-16 code units.

Sentinel renders an incident's comments as HTML and Markdown, whoever wrote them (Microsoft
Sentinel blog, "HTML and Markdown support for incident comment"). Defender's text is plain: its
``&``, ``<`` and ``>`` are escaped (``shown``), so a command line's ``2>&1``, a ``<host>`` or an
attacker's ``<script>`` is shown as written, never dropped or taken for markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, Final

from xdrsync.jsontext import without_surrogates

#: microsoft-apis.md §3.6 (limits of one Sentinel incident).
MAX_DESCRIPTION: Final = 5_000
MAX_COMMENT: Final = 30_000
MAX_COMMENTS: Final = 100
_SPLIT_ENTITY: Final = re.compile(r"&[a-z]*$")  # what a cut leaves of an escaped character


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (what a .NET ``string.Length`` says)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def head(text: str, units: int) -> str:
    """The longest prefix of ``text`` that fits in ``units`` UTF-16 code units."""
    if units <= 0:
        return ""
    if utf16_len(text) <= units:
        return text
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text  # pragma: no cover - the length check above returned already


def fit(text: str, limit: int, marker: str) -> str:
    """``text`` unchanged if it fits in ``limit``; else its head followed by ``marker``,
    together exactly as long as allowed or shorter."""
    if utf16_len(text) <= limit:
        return text
    if utf16_len(marker) >= limit:
        return head(text, limit)
    return head(text, limit - utf16_len(marker)).rstrip() + marker


def shown(text: str) -> str:
    """Plain text as Sentinel's HTML rendering shows it as written."""
    return html.escape(text, quote=False)


def fit_shown(text: str, limit: int, marker: str) -> str:
    """``fit`` for escaped text (``shown``): a cut never leaves the pieces of an ``&amp;``."""
    fitted = fit(text, limit, marker)
    if fitted is text or not fitted.endswith(marker):
        return fitted
    return _SPLIT_ENTITY.sub("", fitted.removesuffix(marker)).rstrip() + marker


def sendable(value: Any) -> Any:
    """``value`` as Sentinel will hold it: each lone surrogate of its text (in mappings and
    lists too) replaced by U+FFFD, as the request body carries it. What xdrsync compares with
    Sentinel is then what Sentinel shows, so such a character never looks like a change."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, Mapping):
        return {sendable(k): sendable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(sendable(v) for v in value)
    return value


__all__ = [
    "MAX_COMMENT",
    "MAX_COMMENTS",
    "MAX_DESCRIPTION",
    "fit",
    "fit_shown",
    "head",
    "sendable",
    "shown",
    "utf16_len",
]
