"""ModelError: one Graph record could not be turned into a typed model."""

from __future__ import annotations

from collections.abc import Sequence

from xdrsync.errors import SkippableError

PathPart = str | int


def render_path(path: Sequence[PathPart]) -> str:
    """`("alerts", 0, "evidence", 3, "verdict")` -> `alerts[0].evidence[3].verdict`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe(value: object) -> str:
    """A short, content-free description of a JSON value for error messages.

    Only the type is named: record contents may be sensitive and end up in logs.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class ModelError(SkippableError):
    """A Graph record has a value of the wrong type; the record is skipped (quarantined).

    ``model`` is the outermost model being parsed, ``path`` the JSON path of the offending
    field inside it (Graph property names, list indexes as ints) and ``problem`` what was wrong.
    """

    def __init__(self, model: str, path: Sequence[PathPart], problem: str) -> None:
        self.model = model
        self.path: tuple[PathPart, ...] = tuple(path)
        self.problem = problem
        super().__init__(
            f"{model}: field '{self.field}': {problem}" if path else f"{model}: {problem}"
        )

    @property
    def field(self) -> str:
        """The offending field as a dotted JSON path, e.g. ``alerts[0].evidence[3].verdict``."""
        return render_path(self.path)

    def under(self, model: str, *prefix: PathPart) -> ModelError:
        """The same error seen from an enclosing model, at ``prefix`` inside it."""
        return ModelError(model, (*prefix, *self.path), self.problem)


__all__ = ["ModelError", "describe", "render_path"]
