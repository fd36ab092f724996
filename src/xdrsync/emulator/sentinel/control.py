"""The loopback control surface, ``/_emulator/...``: truth, stats, analysts' work, faults, config.

No token is needed (the gate admits loopback clients only). An analyst's edit or comment is
what someone does in the Sentinel portal: it goes around the API, so read-only mode, rate
limits and faults do not apply to it, and it changes the incident's etag like any write.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from fastapi import FastAPI, Request, Response

from xdrsync.emulator.sentinel.arm import (
    comment_resource,
    incident_resource,
    json_response,
    read_json,
)
from xdrsync.emulator.sentinel.clientconfig import destination_toml
from xdrsync.emulator.sentinel.errors import bad_request
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.sentinel.settings import SentinelFaults
from xdrsync.emulator.sentinel.store import (
    CommentLimitError,
    EtagConflictError,
    UnknownIncidentError,
)
from xdrsync.emulator.sentinel.validation import (
    MAX_COMMENTS,
    WRITABLE,
    comment_message,
    incident_properties,
)

CONTROL: Final = "/_emulator"
DEFAULT_ANALYST: Final = "Portal analyst"
_NAMESPACE: Final = uuid.UUID("9a1c2e64-3b0f-4c7d-8e55-1f2a3b4c5d6e")


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` writable properties with a portal edit's partial ``changes`` applied."""
    unknown = sorted(set(changes) - set(WRITABLE))
    if unknown:
        raise bad_request(
            f"An analyst cannot edit {', '.join(unknown)}; editable: {', '.join(WRITABLE)}."
        )
    merged = dict(current)
    for key, value in changes.items():
        if key == "owner" and isinstance(value, dict):
            owner = {**(merged.get("owner") or {}), **value}
            if "ownerType" not in value and any(owner.get(k) for k in ("assignedTo", "objectId")):
                owner["ownerType"] = "User"
            merged["owner"] = owner
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def analyst(author: Any) -> dict[str, Any]:
    """A portal user as a comment's author, from a display name or a UPN."""
    name = author if isinstance(author, str) and author.strip() else DEFAULT_ANALYST
    upn = name if "@" in name else None
    return {
        "objectId": str(uuid.uuid5(_NAMESPACE, name)),
        "email": upn,
        "name": name,
        "userPrincipalName": upn,
    }


def add_control_routes(app: FastAPI, emulator: SentinelEmulator) -> None:
    store = emulator.store

    @app.get(CONTROL + "/truth")
    def truth() -> Response:
        return json_response(store.truth())

    @app.get(CONTROL + "/stats")
    def stats() -> Response:
        return json_response(emulator.stats_snapshot())

    @app.get(CONTROL + "/config")
    def config(request: Request) -> Response:
        base = f"{request.url.scheme}://{request.url.netloc}"
        return Response(destination_toml(emulator.settings, base), media_type="text/plain")

    @app.post(CONTROL + "/pause")
    def pause() -> Response:
        emulator.pause()
        return json_response({"paused": True})

    @app.post(CONTROL + "/resume")
    def resume() -> Response:
        emulator.resume()
        return json_response({"paused": False})

    @app.post(CONTROL + "/faults")
    async def set_faults(request: Request) -> Response:
        spec = (await request.body()).decode("utf-8", "replace")
        try:
            emulator.faults = SentinelFaults.parse(spec)
        except ValueError as bad:
            raise bad_request(str(bad)) from None
        return json_response({"faults": spec})

    @app.post(CONTROL + "/incidents/{name}")
    async def analyst_edit(name: str, request: Request) -> Response:
        body = await read_json(request)
        etag = None
        if isinstance(body, dict) and isinstance(body.get("properties"), dict):
            # The portal's save carries the etag of what the analyst was shown.
            etag = body.get("etag") if isinstance(body.get("etag"), str) else None
            body = body["properties"]
        if not isinstance(body, dict):
            raise bad_request("The body must be an object of incident properties.")
        with store.lock:
            try:
                written = incident_properties(_merged(store.writable(name), body))
                incident, _ = store.put_incident(name, written, etag, create=False)
            except UnknownIncidentError:
                return json_response({"error": f"no incident {name}"}, 404)
            except EtagConflictError:
                return json_response({"error": f"incident {name} changed since {etag}"}, 409)
            return json_response(incident_resource(emulator, incident))

    @app.post(CONTROL + "/incidents/{name}/comments")
    async def analyst_comment(name: str, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise bad_request('The body must be {"message": ..., "author"?: ...}.')
        message = comment_message(body)
        comment_name = str(uuid.uuid4())
        with store.lock:
            try:
                comment, _ = store.put_comment(
                    name, comment_name, message, analyst(body.get("author")), None
                )
            except UnknownIncidentError:
                return json_response({"error": f"no incident {name}"}, 404)
            except CommentLimitError:
                raise bad_request(
                    f"Incident '{name}' already has {MAX_COMMENTS} comments."
                ) from None
            return json_response(comment_resource(emulator, name, comment), 201)
