"""Graph's error body, built one way for every route of the emulator."""

from __future__ import annotations

import json
import uuid

from xdrsync.emulator.timefmt import utcnow


def error_body(code: str, message: str, client_request_id: str | None = None) -> bytes:
    """``{"error": {"code", "message", "innerError": {...}}}`` as Graph sends it."""
    request_id = str(uuid.uuid4())
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": utcnow().strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id or request_id,
                },
            }
        }
    ).encode()
