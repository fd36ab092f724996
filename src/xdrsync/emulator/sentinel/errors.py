"""Azure Resource Manager's error shape, ``{"error": {"code", "message"}}``, as an exception.

Route handlers raise :class:`ArmError`; the app renders it. The Logs Ingestion endpoint answers
errors in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class ArmError(Exception):
    """An answer other than success: HTTP status, ARM error code and message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.code, self.message)


def bad_request(message: str) -> ArmError:
    return ArmError(400, "BadRequest", message)
