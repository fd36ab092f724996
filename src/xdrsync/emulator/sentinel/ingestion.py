"""The Logs Ingestion API: ``POST /dataCollectionRules/{ruleId}/streams/{stream}``.

One data collection rule (its immutable id derives from the seed) declares the emulator's
streams. A call needs a token for ``https://monitor.azure.com`` (checked by the gate), the
``api-version``, ``Content-Type: application/json`` and a JSON array of objects, optionally
gzip-compressed. Success is 204. A body over 1 MB (1,048,576 bytes), compressed or once
decompressed, is refused with 413 (microsoft-apis.md §4).

The rule's ``streamDeclarations`` are the ones xdrsync prints for its setup
(``destinations.sentinel.dcr``), and rows are stored as a ``kind: Direct`` DCR with
``transformKql: source`` lands them in the table: only the columns the stream declares, each
value of the declared type or null, ``TimeGenerated`` set to the ingestion time when a row has
none (§4: the body's objects must match the stream declaration; the reserved names
``_ResourceId, id, _SubscriptionId, TenantId, Type, UniqueId, Title`` cannot be columns of a
custom table, so they never land). The call still answers 204, as the service does not name
what it dropped; ``/_emulator/stats`` counts it (``ingestion_dropped``), so a test sees a row
that does not match the rule.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI, Request, Response

from xdrsync.emulator.sentinel.arm import query_options
from xdrsync.emulator.sentinel.errors import ArmError
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.timefmt import graph_time, utcnow

MAX_BODY_BYTES: Final = 1_048_576
#: Column names Log Analytics reserves: never a column of a custom table (microsoft-apis.md §4).
RESERVED: Final = frozenset(
    {"_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"}
)
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


def declared_columns(stream: str) -> dict[str, str]:
    """Column → type of a stream the rule declares (the DCR of the setup); reserved names never
    count as declared."""
    from xdrsync.destinations.sentinel.dcr import STREAMS, stream_columns

    if stream not in STREAMS:
        return {}
    return {c["name"]: c["type"] for c in stream_columns(stream) if c["name"] not in RESERVED}


def _is_datetime(value: str) -> bool:
    text = value.strip()
    if not text:
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def fits(kind: str, value: Any) -> bool:
    """Whether a JSON value lands in a column of this type (else the column is null)."""
    if value is None or kind == "dynamic":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "datetime":
        return isinstance(value, str) and _is_datetime(value)
    if kind in ("long", "int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "real":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True  # a type the emulator does not check


def shape_rows(
    rows: list[dict[str, Any]], columns: Mapping[str, str], now: str
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The rows as the table keeps them, and what was left out: ``column: <name>`` for each
    value of an undeclared (or reserved) column dropped, ``type: <name>`` for each value of
    the wrong type made null."""
    lost: Counter[str] = Counter()
    shaped = []
    for row in rows:
        out: dict[str, Any] = {}
        for name, value in row.items():
            kind = columns.get(name)
            if kind is None:
                lost[f"column: {name}"] += 1
            elif fits(kind, value):
                out[name] = value
            else:
                lost[f"type: {name}"] += 1
                out[name] = None
        if out.get("TimeGenerated") is None:
            out["TimeGenerated"] = now
        shaped.append(out)
    return shaped, lost


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
        rows, lost = shape_rows(_rows(body), declared_columns(stream), graph_time(utcnow()))
        emulator.count_dropped(stream, lost)
        emulator.store.append_rows(stream, rows)
        return Response(status_code=204)
