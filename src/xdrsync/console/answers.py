"""How the console writes JSON: every API answer, error answers included, goes through
``JSONAnswer``.

Stored Defender data may hold a lone UTF-16 surrogate (a Windows file name may), and so may a
request (``"\\ud800"`` is valid JSON); such a string cannot be written as UTF-8, which made
the answer a 500. ``JSONAnswer`` writes it as its JSON escape instead (``"\\ud800"``), which
parses back to the same string.
"""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi.responses import JSONResponse

from xdrsync import jsontext


def _unknown(value: Any) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not JSON")


class JSONAnswer(JSONResponse):
    """``JSONResponse``, with lone surrogates written as JSON escapes rather than failing
    (the same compact text otherwise)."""

    def render(self, content: Any) -> bytes:
        return jsontext.dumps_utf8(content, default=_unknown)


__all__ = ["JSONAnswer"]
