"""Query parameters the REST API does not read are refused, not ignored.

A script that misspells a filter (``?tenat=fabrikam``, ``?severty=high``) would otherwise get
every incident and read it as the filtered answer. The names a route reads are those the
OpenAPI document (``/openapi.json``) lists for it, so what is refused is exactly what is not
documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

QueryNames = Mapping[tuple[str, str], frozenset[str]]


def _documented(app: FastAPI) -> QueryNames:
    """(path, method) → the query parameters the OpenAPI document lists, built once per app."""
    found: QueryNames | None = getattr(app.state, "query_names", None)
    if found is None:
        paths: dict[str, dict[str, Any]] = app.openapi().get("paths", {})
        found = {
            (path, method): frozenset(
                p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"
            )
            for path, operations in paths.items()
            for method, operation in operations.items()
        }
        app.state.query_names = found
    return found


def known_parameters(request: Request) -> None:
    """A router dependency: a 422 naming each query parameter the route does not read (a
    route left out of the document is not checked)."""
    path = getattr(request.scope.get("route"), "path_format", None)
    known = _documented(request.app).get((str(path), request.method.lower()))
    if known is None:
        return
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this route reads: {accepted})",
                    "type": "value_error",
                }
                for name in unknown
            ]
        )


__all__ = ["known_parameters"]
