"""Long ``IN`` lists in parts: the hub's reads and writes bind at most ``CHUNK`` values each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

CHUNK: Final = 400  # bound parameters per IN list, well under every engine's limit


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["CHUNK", "chunks"]
