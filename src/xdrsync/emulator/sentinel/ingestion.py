"""The Logs Ingestion API: ``POST /dataCollectionRules/{ruleId}/streams/{stream}``.

One data collection rule (its immutable id derives from the seed) declares the emulator's
streams. A call needs a token for ``https://monitor.azure.com`` (checked by the gate), the
``api-version``, ``Content-Type: application/json`` and a JSON array of objects, optionally
gzip-compressed. Success is 204; rows are kept per stream, with ``TimeGenerated`` added when a
row has none (as a DCR transformation would). A body over 1 MB (1,048,576 bytes), compressed or
once decompressed, is refused with 413 (microsoft-apis.md §4).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

from fastapi import FastAPI, Request, Response

from xdrsync.emulator.sentinel.arm import query_options
from xdrsync.emulator.sentinel.errors import ArmError
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.timefmt import graph_time, utcnow

MAX_BODY_BYTES: Final = 1_048_576
API_VERSIONS: Final = ("2023-01-01", "2021-11-01-preview")
_DRAIN_LIMIT: Final = 64 * MAX_BODY_BYTES


def too_large(size: int | str) -> ArmError:
    return ArmError(
        413,
        "ContentLengthLimitExceeded",
        f"Maximum allowed content length: {MAX_BODY_BYTES} bytes (1 MB). "
        f"Provided content length: {size} bytes.",
    )


def invalid_payload(message: str) -> ArmError:
    return ArmError(400, "InvalidPayload", message)


async def _read_capped(request: Request) -> bytes:
    """The body, or 413 once it passes the limit (the rest is read and dropped, so the client
    gets the answer instead of a broken pipe)."""
    declared = request.headers.get("content-length")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        elif size > _DRAIN_LIMIT:
            break
    if size > MAX_BODY_BYTES:
        raise too_large(declared or size)
    return b"".join(chunks)


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise invalid_payload("The request body is not valid gzip data.") from None
    if len(out) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise too_large(f"more than {MAX_BODY_BYTES} (decompressed)")
    if not inflater.eof:
        raise invalid_payload("The gzip request body is truncated.")
    return out


def _rows(data: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise invalid_payload("The request body is not valid JSON.") from None
    if not isinstance(parsed, list) or not all(isinstance(row, dict) for row in parsed):
        raise invalid_payload("The request body must be a JSON array of objects.")
    return parsed


def add_ingestion_routes(app: FastAPI, emulator: SentinelEmulator) -> None:
    settings = emulator.settings

    @app.post("/dataCollectionRules/{rule_id}/streams/{stream}")
    async def upload(rule_id: str, stream: str, request: Request) -> Response:
        version = query_options(request).get("api-version")
        if version is None:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in API_VERSIONS:
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. Supported: {', '.join(API_VERSIONS)}.",
            )
        if rule_id != settings.rule_id:
            raise ArmError(
                404,
                "NotFound",
                f"Data collection rule with immutable Id '{rule_id}' not found.",
            )
        if not settings.ingest_permission:
            grant = request.state.grant
            raise ArmError(
                403,
                "OperationFailed",
                "The authentication token provided does not have access to ingest data for the "
                f"data collection rule with immutable Id '{rule_id}'. Required authorization "
                f"action was not found for tenantId {grant.tenant_id} objectId {grant.client_id} "
                f"on resourceId {rule_id}.",
            )
        body = await _read_capped(request)
        if stream not in settings.streams:
            raise ArmError(
                400,
                "InvalidStream",
                f"Stream '{stream}' is not declared in data collection rule '{rule_id}'. "
                f"Declared streams: {', '.join(settings.streams)}.",
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise ArmError(
                415,
                "UnsupportedMediaType",
                f"Content-Type '{media_type or '(none)'}' is not supported; use application/json.",
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body)
        elif encoding not in ("", "identity"):
            raise invalid_payload(f"Content-Encoding '{encoding}' is not supported; use gzip.")
        rows = _rows(body)
        now = graph_time(utcnow())
        for row in rows:
            row.setdefault("TimeGenerated", now)
        emulator.store.append_rows(stream, rows)
        return Response(status_code=204)
