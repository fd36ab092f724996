"""The emulator's HTTP surface: Entra sign-in, the Graph v1.0 security routes, and control."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from xdrsync import jsontext
from xdrsync.emulator.auth import SignInError, openid_document
from xdrsync.emulator.evolvable import (
    PREFER,
    alert_as_answered,
    incident_as_answered,
    wants_newer,
)
from xdrsync.emulator.faults import FaultSettings
from xdrsync.emulator.gate import GraphGate
from xdrsync.emulator.graph_errors import error_body
from xdrsync.emulator.listing import (
    ALERTS,
    INCIDENTS,
    PAGING_MODES,
    ListingError,
    Paging,
    list_page,
)
from xdrsync.emulator.service import Emulator
from xdrsync.emulator.store import (
    ALERT_WRITABLE,
    INCIDENT_WRITABLE,
    PORTAL_EDITABLE,
    TenantStore,
    UnknownEntityError,
)
from xdrsync.emulator.validation import (
    PatchError,
    as_patch_answered,
    unlisted_pair,
    validate_patch,
)

GRAPH = "/v1.0/security"
JSON = "application/json"


def _json(payload: Any, status: int = 200) -> Response:
    # Compact, as Graph writes it; the standard library's encoder was a third of the
    # emulator's CPU in a backfill, on the bench machine's two cores beside xdrsync.
    return Response(jsontext.dumps_utf8(payload), status_code=status, media_type=JSON)


def _graph_error(status: int, code: str, message: str, request: Request) -> Response:
    return Response(
        error_body(code, message, request.headers.get("client-request-id")),
        status_code=status,
        media_type=JSON,
    )


_Record = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def _same(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return record


def _answer(
    request: Request,
    payload: Mapping[str, Any],
    shown: _Record,
    spelled: _Record = _same,
) -> Response:
    """A Graph answer: the record (or each of ``value``'s) as ``shown`` has Graph answer a
    client that did not ask for the enum members newer than unknownFutureValue; as it is,
    saying so, to one that did. ``spelled`` then respells each record's enum values: as
    Graph's answer to a PATCH does (``as_patch_answered``), or as some reads do
    (``Emulator.as_read``)."""
    newer = wants_newer(request.headers.get("Prefer"))
    show = spelled if newer else lambda record: spelled(shown(record))
    records = payload.get("value")
    if isinstance(records, list):
        response = _json({**payload, "value": [show(record) for record in records]})
    else:
        response = _json(show(payload))
    if newer:
        response.headers["Preference-Applied"] = PREFER
    return response


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _store(request: Request, emulator: Emulator) -> TenantStore:
    return emulator.store(request.state.tenant_id)


def _without_alerts(incident: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in incident.items() if k != "alerts"}


def _wants_alerts(request: Request) -> bool:
    return any(
        key.lower() == "$expand" and "alerts" in value.lower()
        for key, value in request.query_params.multi_items()
    )


def _asks_order(request: Request) -> bool:
    return any(key.lower() == "$orderby" for key in request.query_params)


def build_app(emulator: Emulator) -> FastAPI:
    app = FastAPI(title="xdrsync Defender XDR emulator", docs_url=None, redoc_url=None)
    # How next links page: "offset" ($skip, as Graph does) unless switched to "keyset" on the
    # control surface (POST /_emulator/paging), which only measurements should want.
    paging: dict[str, Paging] = {"mode": "offset"}

    # -- Entra ID ------------------------------------------------------------------------

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str, request: Request) -> Response:
        if tenant not in emulator.issuer_keys():
            return JSONResponse(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                status_code=400,
            )
        tenant_id = emulator.issuer_keys()[tenant].tenant_id
        return _json(openid_document(request.url.netloc, tenant, tenant_id))

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        # OAuth token requests are always application/x-www-form-urlencoded.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            body = emulator.issuer.issue(tenant, form)
        except SignInError as refused:
            return JSONResponse(refused.body, status_code=refused.status)
        emulator.count("tokens")
        return _json(body)

    # -- incidents -----------------------------------------------------------------------

    @app.get(f"{GRAPH}/incidents")
    def list_incidents(request: Request) -> Response:
        store = _store(request, emulator)
        return _list(request, store.listable_incidents(), INCIDENTS, expandable=True)

    @app.get(GRAPH + "/incidents/{incident_id}")
    def get_incident(incident_id: str, request: Request) -> Response:
        store = _store(request, emulator)
        try:
            incident = store.incident(incident_id)
        except UnknownEntityError:
            return _not_found("incident", incident_id, request)
        if not _wants_alerts(request):
            body = _without_alerts(incident)
        elif emulator.too_big_to_expand([incident]):
            return _graph_error(
                500, "InternalServerError", "An internal server error occurred.", request
            )
        else:
            body = incident
        body = {
            "@odata.context": f"{_origin(request)}/v1.0/$metadata#security/incidents/$entity",
            **body,
        }
        return _answer(request, body, incident_as_answered, _read_as(request))

    @app.get(GRAPH + "/incidents/{incident_id}/alerts")
    def get_incident_alerts(incident_id: str, request: Request) -> Response:
        store = _store(request, emulator)
        try:
            alerts = store.incident(incident_id).get("alerts") or []
        except UnknownEntityError:
            return _not_found("incident", incident_id, request)
        return _list(request, alerts, ALERTS, expandable=False)

    @app.patch(GRAPH + "/incidents/{incident_id}")
    async def patch_incident(incident_id: str, request: Request) -> Response:
        return await _patch(request, incident_id, INCIDENT_WRITABLE, incident=True)

    @app.post(GRAPH + "/incidents/{incident_id}/comments")
    async def comment_incident(incident_id: str, request: Request) -> Response:
        return await _comment(request, incident_id, incident=True)

    # -- alerts_v2 -----------------------------------------------------------------------

    @app.get(f"{GRAPH}/alerts_v2")
    def list_alerts(request: Request) -> Response:
        store = _store(request, emulator)
        return _list(request, store.listable_alerts(), ALERTS, expandable=False)

    @app.get(GRAPH + "/alerts_v2/{alert_id}")
    def get_alert(alert_id: str, request: Request) -> Response:
        try:
            alert = _store(request, emulator).alert(alert_id)
        except UnknownEntityError:
            return _not_found("alert", alert_id, request)
        return _answer(
            request,
            {
                "@odata.context": f"{_origin(request)}/v1.0/$metadata#security/alerts_v2/$entity",
                **alert,
            },
            alert_as_answered,
            _read_as(request),
        )

    @app.patch(GRAPH + "/alerts_v2/{alert_id}")
    async def patch_alert(alert_id: str, request: Request) -> Response:
        return await _patch(request, alert_id, ALERT_WRITABLE, incident=False)

    @app.post(GRAPH + "/alerts_v2/{alert_id}/comments")
    async def comment_alert(alert_id: str, request: Request) -> Response:
        return await _comment(request, alert_id, incident=False)

    # -- shared handlers -----------------------------------------------------------------

    def _list(
        request: Request, records: list[dict[str, Any]], spec: Any, *, expandable: bool
    ) -> Response:
        query = dict(request.query_params)
        base_url = f"{_origin(request)}{request.url.path}"
        try:
            page = list_page(
                records,
                query,
                spec=spec,
                base_url=base_url,
                paging=paging["mode"],
                ties=emulator.tie_order(),
                order_ignored=paging["mode"] == "offset" and emulator.order_ignored(),
                order_refused=_asks_order(request) and emulator.order_refused(),
            )
        except ListingError as bad:
            return _graph_error(bad.status, bad.code, bad.message, request)
        items = list(page.items)
        if expandable:
            if _wants_alerts(request):
                if emulator.expand_fails(request.state.tenant_id, items):
                    return _graph_error(
                        500, "InternalServerError", "An internal server error occurred.", request
                    )
            else:
                items = [_without_alerts(i) for i in items]
        body: dict[str, Any] = {"@odata.context": page.context}
        if page.count is not None:
            body["@odata.count"] = page.count
        body["value"] = items
        if page.next_link:
            body["@odata.nextLink"] = page.next_link
        return _answer(
            request,
            body,
            incident_as_answered if expandable else alert_as_answered,
            _read_as(request),
        )

    def _read_as(request: Request) -> _Record:
        """How this read spells each record (``respelled_rate``)."""
        tenant_id = request.state.tenant_id
        return lambda record: emulator.as_read(tenant_id, record)

    def _not_found(kind: str, entity_id: str, request: Request) -> Response:
        return _graph_error(404, "NotFound", f"No {kind} found with id '{entity_id}'.", request)

    async def _read_body(request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _graph_error(400, "BadRequest", "The request body is not valid JSON.", request)
        if not isinstance(body, dict):
            return _graph_error(
                400, "BadRequest", "The request body must be a JSON object.", request
            )
        return body

    async def _patch(
        request: Request, entity_id: str, writable: frozenset[str], *, incident: bool
    ) -> Response:
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        try:
            changes = validate_patch(body, writable, incident=incident)
        except PatchError as bad:
            return _graph_error(400, "BadRequest", str(bad), request)
        unlisted = unlisted_pair(changes)
        if unlisted is not None and emulator.pair_refused():
            return _graph_error(400, "BadRequest", unlisted, request)
        store = _store(request, emulator)
        editor = f"API-App:{request.state.client_id}"
        try:
            if incident:
                updated = _without_alerts(store.edit_incident(entity_id, changes, editor=editor))
                context = "security/incidents/$entity"
            else:
                updated = store.edit_alert(entity_id, changes, editor=editor)
                context = "security/alerts_v2/$entity"
        except UnknownEntityError:
            return _not_found("incident" if incident else "alert", entity_id, request)
        # Graph's documented answer spells status, classification and determination in
        # PascalCase ("TruePositive") where the emulator's reads say "truePositive": a client
        # must not take the spelling for a different value (reference §2.3).
        return _answer(
            request,
            {"@odata.context": f"{_origin(request)}/v1.0/$metadata#{context}", **updated},
            incident_as_answered if incident else alert_as_answered,
            as_patch_answered,
        )

    async def _comment(request: Request, entity_id: str, *, incident: bool) -> Response:
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        text = body.get("comment")
        if not isinstance(text, str) or not text.strip():
            return _graph_error(400, "BadRequest", "The 'comment' property is required.", request)
        store = _store(request, emulator)
        author = f"API-App:{request.state.client_id}"
        try:
            if incident:
                comments = store.add_incident_comment(entity_id, text, author)
            else:
                comments = store.add_alert_comment(entity_id, text, author)
        except UnknownEntityError:
            return _not_found("incident" if incident else "alert", entity_id, request)
        return _json(
            {
                "@odata.context": f"{_origin(request)}/v1.0/$metadata"
                "#Collection(microsoft.graph.security.alertComment)",
                "value": comments,
            }
        )

    # -- control surface (no token; the gate admits loopback clients only) ---------------

    def _tenant_param(request: Request) -> str | Response:
        wanted = request.query_params.get("tenant")
        if wanted is None:
            return emulator.default_tenant()
        tenant = emulator.issuer_keys().get(wanted) or next(
            (t for t in emulator.tenants.values() if t.name == wanted), None
        )
        if tenant is None:
            return _json({"error": f"unknown tenant {wanted!r}"}, 404)
        return tenant.tenant_id

    @app.get("/_emulator/truth")
    def truth(request: Request) -> Response:
        wanted = request.query_params.get("tenant")
        tenant_ids = list(emulator.stores)
        if wanted is not None:
            chosen = _tenant_param(request)
            if isinstance(chosen, Response):
                return chosen
            tenant_ids = [chosen]
        parts = [text for t in tenant_ids for text in emulator.store(t).truth_json()]
        return Response('{"value": [' + ",".join(parts) + "]}", media_type=JSON)

    @app.get("/_emulator/stats")
    def stats(request: Request) -> Response:
        return _json(emulator.stats_snapshot())

    @app.get("/_emulator/tenants")
    def tenants(request: Request) -> Response:
        return _json(
            [
                {
                    "name": t.name,
                    "tenant_id": t.tenant_id,
                    "client_id": t.client_id,
                    "client_secret": t.client_secret,
                    "rate_limit_per_minute": t.rate_limit_per_minute,
                    "read_only": t.read_only,
                    "roles": list(t.roles),
                }
                for t in emulator.tenants.values()
            ]
        )

    @app.post("/_emulator/pause")
    def pause(request: Request) -> Response:
        emulator.pause()
        return _json({"paused": True})

    @app.post("/_emulator/resume")
    def resume(request: Request) -> Response:
        emulator.resume()
        return _json({"paused": False})

    @app.post("/_emulator/faults")
    async def set_faults(request: Request) -> Response:
        spec = (await request.body()).decode()
        try:
            emulator.set_faults(FaultSettings.parse(spec))
        except ValueError as bad:
            return _json({"error": str(bad)}, 400)
        return _json({"faults": spec})

    @app.get("/_emulator/paging")
    def get_paging(request: Request) -> Response:
        return _json({"paging": paging["mode"]})

    @app.post("/_emulator/paging")
    async def set_paging(request: Request) -> Response:
        wanted = (await request.body()).decode().strip().lower()
        for mode in PAGING_MODES:
            if wanted == mode:
                paging["mode"] = mode
                return _json({"paging": mode})
        return _json({"error": f"paging is one of {', '.join(PAGING_MODES)}, not {wanted!r}"}, 400)

    @app.post("/_emulator/incidents/{incident_id}")
    async def analyst_edit(incident_id: str, request: Request) -> Response:
        tenant_id = _tenant_param(request)
        if isinstance(tenant_id, Response):
            return tenant_id
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        comments = body.pop("comments", [])
        try:
            changes = validate_patch(body, PORTAL_EDITABLE, incident=True, portal=True)
        except PatchError as bad:
            return _json({"error": str(bad)}, 400)
        store = emulator.store(tenant_id)
        try:
            with store.lock:
                for comment in comments:
                    store.add_incident_comment(
                        incident_id,
                        str(comment["comment"]),
                        str(comment.get("createdByDisplayName") or "Portal analyst"),
                    )
                updated = (
                    store.edit_incident(incident_id, changes, editor=None)
                    if changes
                    else store.incident(incident_id)
                )
        except UnknownEntityError:
            return _json({"error": f"no incident {incident_id}"}, 404)
        return _json(updated)

    @app.post("/_emulator/alerts/{alert_id}/move")
    async def move_alert(alert_id: str, request: Request) -> Response:
        """Defender moves the alert to the incident ``{"incidentId": ...}`` names, without a
        merge: the alert and that incident are stamped, the incident it leaves is not."""
        tenant_id = _tenant_param(request)
        if isinstance(tenant_id, Response):
            return tenant_id
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        target = body.get("incidentId")
        if not isinstance(target, str) or not target:
            return _json({"error": "the body names the incident as 'incidentId'"}, 400)
        try:
            source, alert = emulator.store(tenant_id).move_alert(alert_id, target)
        except UnknownEntityError as missing:
            return _json({"error": f"no alert or incident {missing.args[0]}"}, 404)
        except ValueError as refused:
            return _json({"error": str(refused)}, 409)
        return _json({"from": source, "to": target, "alert": alert})

    app.add_middleware(GraphGate, emulator=emulator, routes=app.router.routes)
    return app
