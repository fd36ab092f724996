"""The REST API under ``/api/v1`` (docs/api.md): the queue, incidents and alerts, edits through
the two-way outbox, KQL, conflicts, health and live changes. Every route names its role; every
record is looked up within the tenants the caller may see."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from xdrsync.console import queue
from xdrsync.console.answers import JSONAnswer
from xdrsync.console.auth import Principal, context, identify, requires
from xdrsync.console.context import ID_SEPARATOR, ConsoleContext
from xdrsync.console.parameters import known_parameters
from xdrsync.errors import EditRefusedError
from xdrsync.hub.records import EntityType, OutboxRow
from xdrsync.models.enums import IncidentStatus, ServiceSource, Severity
from xdrsync.models.identity import ENTITY_KINDS
from xdrsync.tables.vocab import MITRE_TACTICS
from xdrsync.twoway import submit
from xdrsync.twoway.edits import EditRequest


class ErrorOut(BaseModel):
    detail: Any


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorOut, "description": "Not signed in (no or dead credentials)."},
    403: {"model": ErrorOut, "description": "Without the role, or without the CSRF token."},
    404: {"model": ErrorOut, "description": "No such record among the tenants you may see."},
}
router = APIRouter(prefix="/api/v1", responses=ERRORS, dependencies=[Depends(known_parameters)])
Reader = Annotated[Principal, Depends(requires("reader"))]
Responder = Annotated[Principal, Depends(requires("responder"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
Ctx = Annotated[ConsoleContext, Depends(context)]

MAX_TOP: Final = 500
MAX_INT: Final = 2**63 - 1  # the hub's integers (SQLite and PostgreSQL BIGINT)
Sort = Literal[
    "lastUpdate",
    "-lastUpdate",
    "created",
    "-created",
    "severity",
    "-severity",
    "firstActivity",
    "-firstActivity",
    "lastActivity",
    "-lastActivity",
    "alertCount",
    "-alertCount",
]


class StrictBody(BaseModel):
    """A request body: unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Tags = Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=200)]


class AlertSeen(StrictBody):
    """The values the page showed when the user edited (``null``: none shown). The merge
    compares them with Defender's, so a change made in Defender since the page was drawn is
    a conflict for the field's policy; a field left out counts as the workspace's value at
    submit."""

    assignedTo: str | None = Field(default=None, max_length=320)  # noqa: N815
    status: str | None = Field(default=None, max_length=64)
    classification: str | None = Field(default=None, max_length=64)
    determination: str | None = Field(default=None, max_length=64)


class IncidentSeen(AlertSeen):
    customTags: Tags | None = None  # noqa: N815


class IncidentPatch(StrictBody):
    """Graph's names; a field left out is left as is. ``assignedTo: ""`` unassigns.
    ``addTags``/``removeTags`` change only the tags named; ``customTags`` (the whole new list)
    is diffed against ``seen.customTags``, else against the workspace's tags now."""

    assignedTo: str | None = Field(default=None, max_length=320)  # noqa: N815
    status: str | None = Field(default=None, max_length=64)
    classification: str | None = Field(default=None, max_length=64)
    determination: str | None = Field(default=None, max_length=64)
    customTags: Tags | None = None  # noqa: N815
    addTags: Tags | None = None  # noqa: N815
    removeTags: Tags | None = None  # noqa: N815
    seen: IncidentSeen | None = None


class AlertPatch(StrictBody):
    assignedTo: str | None = Field(default=None, max_length=320)  # noqa: N815
    status: str | None = Field(default=None, max_length=64)
    classification: str | None = Field(default=None, max_length=64)
    determination: str | None = Field(default=None, max_length=64)
    seen: AlertSeen | None = None


def _seen(body: IncidentPatch | AlertPatch) -> dict[str, Any] | None:
    """The fields the client said its page showed (an explicit ``null`` included)."""
    return body.seen.model_dump(exclude_unset=True) if body.seen is not None else None


class CommentBody(StrictBody):
    comment: str = Field(min_length=1, max_length=30_000)


class QueryBody(StrictBody):
    query: str = Field(min_length=1, max_length=64 * 1024)


class ResolveBody(StrictBody):
    take: Literal["workspace", "defender"]


class EditOut(BaseModel):
    id: int
    target: str
    field: str
    wanted: Any
    state: str
    outcome: str | None
    author: str
    origin: str
    createdAt: datetime  # noqa: N815
    doneAt: datetime | None  # noqa: N815


class EditsOut(BaseModel):
    edits: list[EditOut]


def _edit_out(ctx: ConsoleContext, row: OutboxRow) -> EditOut:
    return EditOut(
        id=row.id,
        target=ctx.workspace_id(row.tenant_id, row.entity_id),
        field=row.field,
        wanted=row.wanted,
        state=row.state,
        outcome=row.outcome,
        author=row.author,
        origin=row.origin,
        createdAt=row.created_at,
        doneAt=row.done_at,
    )


def invalid(where: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the OpenAPI document's ``HTTPValidationError``)."""
    return RequestValidationError([{"loc": where, "msg": message, "type": "value_error"}])


# -- the queue ------------------------------------------------------------------------------


ListParam = Annotated[list[str] | None, Query(max_length=50)]


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first datetime in UTC
        raise ValueError("the time is out of range in UTC") from None


#: A time with its time zone (``Z`` or ``+02:00``; the hub compares times in UTC): a time
#: without one would be a guess, and is refused (422).
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


@dataclass(frozen=True)
class Filtered:
    """The queue's filters from a request, and the tenants the caller may see among those
    asked for."""

    filter: queue.QueueFilter
    tenant_ids: list[str]


def queue_filter(
    principal: Reader,
    ctx: Ctx,
    status: ListParam = None,
    severity: ListParam = None,
    tenant: ListParam = None,
    product: ListParam = None,
    tactic: ListParam = None,
    tag: ListParam = None,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Moment | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    entity: Annotated[str | None, Query(max_length=8192)] = None,
    id: ListParam = None,
) -> Filtered:
    """The queue's filters (any of the given values of each), shared by the list and its
    counts. ``owner=me`` is the caller's address; ``entity`` is ``kind:key``; ``id`` a
    workspace id (one the caller may not see matches nothing). A value that can match no
    incident is refused (``_refusals``), not answered with an empty list."""
    visible = ctx.visible_tenant_ids(principal.user)
    if owner == "me":
        owner = principal.user.address or principal.user.name
    flt = queue.QueueFilter(
        statuses=tuple(status or ()),
        severities=tuple(severity or ()),
        products=tuple(product or ()),
        tactics=tuple(tactic or ()),
        tags=tuple(tag or ()),
        owner=owner or None,
        since=from_,
        until=to,
        search=(search or "").strip() or None,
        entity=_entity(entity),
        incidents=tuple(_incident_keys(ctx, id or ())),
    )
    problems = _refusals(ctx, visible, flt, tenant or ())
    if problems:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": msg, "type": "value_error"} for name, msg in problems]
        )
    if tenant:
        wanted = {ctx.ids.get(name) for name in tenant}
        visible = [t for t in visible if t in wanted]
    return Filtered(flt, visible)


# -- values that match nothing --------------------------------------------------------------
#
# A filter value no incident can have answers an empty list, which a script reads as "no
# incidents" (a typo'd tenant, `status=Actve`, Sentinel's `new`): such a value is refused
# with a 422 naming it. What "can have" means depends on the set the value comes from:
#
# * closed sets, known to this version: a tenant (those the caller may see: one they may not
#   is refused exactly as one that does not exist, naming only theirs), a MITRE tactic (the
#   index keeps only the names ``tables.vocab.tactic`` gives), an entity kind;
# * Graph's evolvable enums (status, severity, product): a value Defender adds later is
#   stored as sent, counted under its own name (``byStatus``), and must stay filterable. So
#   a member this version knows (in any case) is always taken, and any other value only
#   while some incident the caller may see has it (the counts show it: filter on it);
# * free text (tags, owners, searches, entity keys, ids) can turn up at any time, and only
#   an empty tag, which no incident holds, is refused. An ``id`` is a record's name rather
#   than a filter: one the caller may not see matches nothing, like a 404 (docs/api.md).

_TACTICS: Final = frozenset(t.casefold() for t in MITRE_TACTICS)  # matched in any case


def _named(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in dict.fromkeys(values))


def _not_members(values: Sequence[str], members: Sequence[str]) -> tuple[str, ...]:
    """The values that are none of ``members`` in any case."""
    folded = {m.casefold() for m in members}
    return tuple(v for v in values if v.casefold() not in folded)


def _refusals(
    ctx: ConsoleContext, visible: Sequence[str], flt: queue.QueueFilter, tenants: Sequence[str]
) -> list[tuple[str, str]]:
    """(parameter, message) for each filter of the queue holding a value that matches no
    incident the caller may see, now or later (see above)."""
    problems: list[tuple[str, str]] = []
    names = sorted(ctx.names[t] for t in visible)
    if bad := [t for t in tenants if t not in names]:
        yours = ", ".join(names) if names else "none"
        problems.append(("tenant", f"no tenant {_named(bad)}: the tenants you see are {yours}"))
    unknown = queue.QueueFilter(
        statuses=_not_members(flt.statuses, (*IncidentStatus.MEMBERS, queue.UNKNOWN_SEVERITY)),
        severities=_not_members(flt.severities, Severity.MEMBERS),
        products=_not_members(flt.products, ServiceSource.MEMBERS),
    )
    unmatched = queue.unmatched(ctx.hub, unknown, visible)
    if unmatched.statuses:
        sentinel = any(v.casefold() == "new" for v in unmatched.statuses)
        problems.append(
            (
                "status",
                f"no incident has status {_named(unmatched.statuses)}: the statuses are "
                f"Defender's {', '.join(IncidentStatus.MEMBERS)}, unknown (none), or one an "
                "incident has"
                + ("; Defender has no new (Sentinel's New is its active)" if sentinel else ""),
            )
        )
    if unmatched.severities:
        problems.append(
            (
                "severity",
                f"no incident has severity {_named(unmatched.severities)}: the severities are "
                "high (with any newer than this version, such as critical), medium, low, "
                "informational, unknown (none), or one an incident has",
            )
        )
    if unmatched.products:
        problems.append(
            (
                "product",
                f"no incident has product {_named(unmatched.products)}: Graph's service "
                f"sources are {', '.join(ServiceSource.MEMBERS)}, or one an incident has",
            )
        )
    if bad := [t for t in flt.tactics if t.casefold() not in _TACTICS]:
        tactics = ", ".join(sorted(MITRE_TACTICS))
        problems.append(("tactic", f"not a MITRE tactic: {_named(bad)}; the tactics are {tactics}"))
    if "" in flt.tags:
        problems.append(("tag", "an empty tag matches no incident"))
    if flt.since is not None and flt.until is not None and flt.since >= flt.until:
        problems.append(("to", "to must be after from (from <= last update < to)"))
    if flt.entity is not None and (kind := _entity_kind(flt.entity[0])):
        problems.append(("entity", kind))
    return problems


def _entity_kind(kind: str) -> str | None:
    """Why ``kind`` names no entity kind, or None when it names one."""
    if kind in ENTITY_KINDS:
        return None
    return f"no entity kind {kind!r}: the kinds are {', '.join(sorted(ENTITY_KINDS))}"


def _incident_keys(ctx: ConsoleContext, ids: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(tenant id, incident id) of each workspace id; the tenants' scoping is the list's."""
    for workspace_id in ids:
        name, sep, incident_id = workspace_id.partition(ID_SEPARATOR)
        tenant_id = ctx.ids.get(name)
        if sep and incident_id and tenant_id is not None:
            yield tenant_id, incident_id
        else:
            yield "", workspace_id  # matches no incident, as an id of nothing should


def _entity(text: str | None) -> tuple[str, str] | None:
    """``kind:key`` (the key may hold colons) as (kind, key)."""
    if text is None:
        return None
    kind, colon, key = text.partition(":")
    if not (kind and colon and key):
        raise invalid(("query", "entity"), "entity is kind:key, e.g. ip:10.0.0.1")
    return kind, key


QueueFilters = Annotated[Filtered, Depends(queue_filter)]


@router.get("/incidents", tags=["incidents"])
def list_incidents(
    request: Request,
    ctx: Ctx,
    filtered: QueueFilters,
    sort: Sort = "-lastUpdate",
    top: Annotated[int, Query(ge=1, le=MAX_TOP)] = 50,
    skiptoken: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    """The incident queue: filters of any of the given values, newest update first."""
    flt = replace(filtered.filter, sort=sort.removeprefix("-"), descending=sort.startswith("-"))
    try:
        page = queue.list_queue(ctx.hub, flt, filtered.tenant_ids, top=top, after=skiptoken)
    except ValueError as bad:
        raise invalid(("query", "skiptoken"), str(bad)) from bad
    next_link = _next_link(request, page.next_token) if page.next_token is not None else None
    return {"value": [item.to_json(ctx.names) for item in page.items], "nextLink": next_link}


def _next_link(request: Request, token: str) -> str:
    """This request's address with its page token replaced by ``token``."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "skiptoken"]
    params.append(("skiptoken", token))
    return str(request.url.replace(query=urlencode(params)))


@router.get("/incidents/stats", tags=["incidents"])
def incident_stats(ctx: Ctx, filtered: QueueFilters) -> dict[str, Any]:
    """Counts by severity and status, and incidents over time, for the queue's filters."""
    return queue.queue_stats(ctx.hub, filtered.filter, filtered.tenant_ids)


@router.get("/incidents/{incident_id}", tags=["incidents"])
def get_incident(incident_id: str, principal: Reader, ctx: Ctx) -> dict[str, Any]:
    """One incident with its alerts, entities, graph, timeline, comments, history and edits."""
    from xdrsync.console.detail import incident_detail

    tenant_id, defender_id = ctx.resolve(principal.user, incident_id)
    found = incident_detail(ctx.hub, tenant_id, defender_id, ctx.names)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return found


def _queue_edit(
    ctx: ConsoleContext,
    principal: Principal,
    kind: EntityType,
    workspace_id: str,
    request: EditRequest,
) -> EditsOut:
    tenant_id, entity_id = ctx.resolve(principal.user, workspace_id, kind)
    tenant = next(t for t in ctx.config.tenants if t.tenant_id == tenant_id)
    target = submit.Tenant(tenant.name, tenant_id, ctx.config.writes_to(tenant))
    origin = "console" if principal.via == "session" else "api"
    try:
        ids = submit.submit(
            ctx.hub, target, kind, entity_id, request, author=principal.user.name, origin=origin
        )
    except EditRefusedError as refused:
        if str(refused).startswith(f"no {kind} "):
            raise HTTPException(404, str(refused)) from refused
        raise invalid(("body",), str(refused)) from refused
    if ids and ctx.wake_pusher is not None:
        ctx.wake_pusher()
    return EditsOut(edits=[_edit_out(ctx, row) for row in ctx.hub.edits(ids=ids)] if ids else [])


@router.patch("/incidents/{incident_id}", tags=["incidents"], status_code=202)
def update_incident(
    incident_id: str, body: IncidentPatch, principal: Responder, ctx: Ctx
) -> EditsOut:
    """Queue an edit for Defender (two-way outbox); the answer lists the queued edits."""
    add, remove = _tag_changes(ctx, principal, incident_id, body)
    request = EditRequest(
        status=body.status,
        owner=body.assignedTo,
        classification=body.classification,
        determination=body.determination,
        add_tags=add,
        remove_tags=remove,
        seen=_seen(body),
    )
    return _queue_edit(ctx, principal, "incident", incident_id, request)


def _tag_changes(
    ctx: ConsoleContext, principal: Principal, incident_id: str, body: IncidentPatch
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tags to add and to remove. A whole list is diffed against the list the client saw
    (``seen.customTags``), or without it against the workspace's tags now: then a tag added in
    Defender since the client read the list is removed, which deltas never do."""
    if body.customTags is None:
        return tuple(body.addTags or ()), tuple(body.removeTags or ())
    if body.addTags or body.removeTags:
        raise invalid(("body", "customTags"), "send customTags or addTags/removeTags, not both")
    seen = body.seen
    if seen is not None and "customTags" in seen.model_fields_set:
        before = list(seen.customTags or ())  # `null`: the client showed none
    else:
        tenant_id, defender_id = ctx.resolve(principal.user, incident_id)
        shown = submit.current_view(ctx.hub, tenant_id, "incident", defender_id)
        if shown is None:
            raise HTTPException(404, f"no incident {incident_id}")
        before = [str(t) for t in shown.get("customTags") or ()]
    add = tuple(t for t in dict.fromkeys(body.customTags) if t not in before)
    remove = tuple(t for t in dict.fromkeys(before) if t not in body.customTags)
    return add, remove


@router.post("/incidents/{incident_id}/comments", tags=["incidents"], status_code=202)
def comment_incident(
    incident_id: str, body: CommentBody, principal: Responder, ctx: Ctx
) -> EditsOut:
    """Add a comment (to the workspace now, to Defender through the outbox)."""
    return _queue_edit(ctx, principal, "incident", incident_id, EditRequest(comment=body.comment))


# -- alerts and entities --------------------------------------------------------------------


@router.get("/alerts/{alert_id}", tags=["alerts"])
def get_alert(alert_id: str, principal: Reader, ctx: Ctx) -> dict[str, Any]:
    """One alert with its evidence."""
    from xdrsync.console.detail import alert_detail

    tenant_id, defender_id = ctx.resolve(principal.user, alert_id, "alert")
    found = alert_detail(ctx.hub, tenant_id, defender_id, ctx.names)
    if found is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return found


@router.patch("/alerts/{alert_id}", tags=["alerts"], status_code=202)
def update_alert(alert_id: str, body: AlertPatch, principal: Responder, ctx: Ctx) -> EditsOut:
    """Queue an alert edit for Defender."""
    request = EditRequest(
        status=body.status,
        owner=body.assignedTo,
        classification=body.classification,
        determination=body.determination,
        seen=_seen(body),
    )
    return _queue_edit(ctx, principal, "alert", alert_id, request)


@router.get("/entities", tags=["entities"])
def list_entities(
    request: Request,
    principal: Reader,
    ctx: Ctx,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    top: Annotated[int, Query(ge=1, le=MAX_TOP)] = 50,
    skiptoken: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    """Entities seen in evidence, most shared first, with the incidents that share each."""
    from xdrsync.console.entities import entities, entity_token

    if kind and (wrong := _entity_kind(kind)):
        raise invalid(("query", "kind"), wrong)
    visible = ctx.visible_tenant_ids(principal.user)
    try:
        rows = entities(ctx.hub, visible, kind, search, top + 1, after=skiptoken or None)
    except ValueError as bad:
        raise invalid(("query", "skiptoken"), str(bad)) from bad
    next_link = None
    if len(rows) > top:
        rows = rows[:top]
        next_link = _next_link(request, entity_token(rows[-1]))
    for row in rows:
        tenant_id = row.pop("tenantId")
        row["tenant"] = ctx.names.get(tenant_id, tenant_id)
        row["incidents"] = [ctx.workspace_id(tenant_id, i) for i in row["incidents"]]
    return {"value": rows, "nextLink": next_link}


# -- hunting --------------------------------------------------------------------------------


@router.post(
    "/query",
    tags=["hunting"],
    responses={
        400: {"description": "The query was refused, invalid, too slow or too large."},
        503: {"description": "The log store is busy being written; try again."},
    },
)
def run_query(body: QueryBody, principal: Reader, ctx: Ctx) -> Response:
    """KQL over the workspace tables, read-only, within the query limits; a user scoped to
    tenants gets their rows only."""
    from xdrsync.console import hunting

    scoped = principal.user.scoped
    tenant_ids = ctx.visible_tenant_ids(principal.user) if scoped else None
    try:
        result = hunting.run_query(
            ctx.logs, body.query, tenant_ids=tenant_ids, max_rows=ctx.config.query.max_rows
        )
    except Exception as failure:  # a query error is an answer, not a server error
        answer = hunting.error_json(failure)
        if answer is None:
            raise
        busy = answer["error"]["code"] == "busy"  # the log store is being written: retry
        return JSONAnswer(answer, status_code=503 if busy else 400)
    return JSONAnswer(result)


@router.get("/query/examples", tags=["hunting"])
def query_examples(principal: Reader) -> dict[str, Any]:
    """Saved example queries."""
    from xdrsync.console import hunting

    return {"value": hunting.examples(), "nextLink": None}


# -- conflicts, health, changes -------------------------------------------------------------


@router.get("/conflicts", tags=["conflicts"])
def list_conflicts(principal: Reader, ctx: Ctx) -> dict[str, Any]:
    """Edits of fields with policy ``manual`` that Defender changed too."""
    rows = []
    for tenant_id in ctx.visible_tenant_ids(principal.user):
        for row in ctx.hub.edits(tenant_id=tenant_id, states=["conflict"]):
            out = _edit_out(ctx, row).model_dump(mode="json")
            out["theirs"] = row.theirs
            out["seen"] = row.seen
            out["entityType"] = row.entity_type
            rows.append(out)
    return {"value": rows, "nextLink": None}


@router.post(
    "/conflicts/{outbox_id}/resolve",
    tags=["conflicts"],
    responses={409: {"model": ErrorOut, "description": "The edit is not in conflict."}},
)
def resolve_conflict(
    outbox_id: Annotated[int, Path(ge=1, le=MAX_INT)],
    body: ResolveBody,
    principal: Responder,
    ctx: Ctx,
) -> EditOut:
    """Keep the workspace's edit (it goes to Defender again) or Defender's value."""
    found = ctx.hub.edits(ids=[outbox_id])
    if not found or found[0].tenant_id not in ctx.visible_tenant_ids(principal.user):
        raise HTTPException(404, f"no edit {outbox_id}")
    try:
        row = submit.resolve(ctx.hub, outbox_id, body.take)
    except EditRefusedError as refused:
        raise HTTPException(409, str(refused)) from refused
    if ctx.wake_pusher is not None:
        ctx.wake_pusher()
    return _edit_out(ctx, row)


@router.get("/health", tags=["health"])
def get_health(principal: Reader, ctx: Ctx) -> dict[str, Any]:
    """Per tenant and stream: watermark, lag, last cycle, Graph calls, quarantine, edits."""
    from xdrsync.console.health import health

    return health(ctx.hub, ctx.config, ctx.visible_tenant_ids(principal.user))


@router.get("/changes", tags=["incidents"])
def changes(
    principal: Reader,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> dict[str, Any]:
    """The incidents changed since change ``after`` (for live updates); ``seq`` is the
    position to ask from next time. ``after=0`` answers the current position only. A change
    is named once the queue's index has taken it in, so that a row redrawn from the queue
    shows it (``seq`` never passes the index)."""
    visible = ctx.visible_tenant_ids(principal.user)
    position, keys = queue.changed_incidents(ctx.hub, after, visible)
    return {"seq": position, "incidents": [ctx.workspace_id(t, i) for t, i in keys]}


@router.post("/connectors/{tenant}/check", tags=["connectors"])
def check_connector(
    tenant: Annotated[str, Path(max_length=64)], principal: Admin, ctx: Ctx
) -> dict[str, Any]:
    """Sign in as the tenant's app, read the permissions it was granted, and make one read
    of incidents and one of alerts_v2 (admins; it spends two Graph calls)."""
    from xdrsync.connectors import check_tenant

    found = next((t for t in ctx.config.tenants if t.name == tenant), None)
    if found is None or not principal.user.sees(found.tenant_id):
        raise HTTPException(404, f"no tenant {tenant}")
    result = check_tenant(found, ctx.config.sync, two_way=ctx.config.writes_to(found))
    return result.to_dict()


metrics_router = APIRouter()
_FORWARDED: Final = ("x-forwarded-for", "forwarded", "x-real-ip")


def _local_scraper(request: Request, ctx: ConsoleContext) -> bool:
    """Whether a request without credentials may read ``/metrics``: one from this machine
    (loopback) to a console with no proxy in front of it. Behind a proxy every request comes
    from the proxy, so none is known to be local; a request carrying forwarding headers
    came through a proxy too (if not a configured one)."""
    from xdrsync.config import is_loopback_host

    if ctx.config.console.trusted_proxies:
        return False
    if any(name in request.headers for name in _FORWARDED):
        return False
    return is_loopback_host(request.client.host if request.client else "")


@metrics_router.get("/metrics", include_in_schema=False)
def metrics(request: Request, ctx: Ctx) -> Response:
    """Prometheus text: open to loopback scrapers of a console with no proxy in front (every
    tenant), otherwise for signed-in readers; with credentials, the tenants their user may
    see, as ``/api/v1/health``."""
    from xdrsync.console.health import metrics_text

    principal = identify(request)
    if principal is not None:
        tenant_ids = ctx.visible_tenant_ids(principal.user)
    elif _local_scraper(request, ctx):
        tenant_ids = [t.tenant_id for t in ctx.config.tenants]
    else:
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})
    return PlainTextResponse(
        metrics_text(ctx.hub, ctx.config, tenant_ids), media_type="text/plain; version=0.0.4"
    )


__all__ = ["ERRORS", "metrics_router", "router"]
