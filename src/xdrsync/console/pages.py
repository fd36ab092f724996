"""The console's pages: server-rendered shells that the console's own scripts fill from the
REST API (``/api/v1``). Every page needs a signed-in reader; ``/connectors`` needs an admin,
``/users`` an admin of every tenant; ``/tokens`` is everyone's own.

The pages carry no data a script could not read from the API itself: the templates get the
user, the CSRF token (in a ``<meta>`` tag, for the scripts' edits) and the tenants the user
may see. Anything refused is answered with a page, not JSON: a browser asked for it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from xdrsync.console.auth import Principal, context, requires
from xdrsync.models.enums import ServiceSource
from xdrsync.tables.vocab import SERVICE_DISPLAY
from xdrsync.twoway.fields import MAX_TAG_LENGTH

router = APIRouter(include_in_schema=False)

#: The queue's product filter: (Graph's serviceSource, its name), every member Graph lists.
PRODUCTS: tuple[tuple[str, str], ...] = tuple(
    (member, SERVICE_DISPLAY[member.lower()].removeprefix("Microsoft "))
    for member in ServiceSource.MEMBERS
    if member.lower() in SERVICE_DISPLAY
)

Reader = Annotated[Principal, Depends(requires("reader"))]


def _render(
    request: Request,
    principal: Principal,
    template: str,
    *,
    page: str,
    status_code: int = 200,
    **extra: object,
) -> HTMLResponse:
    from xdrsync.console.app import page_context, templates

    values = page_context(request, principal, page=page, **extra)
    response: HTMLResponse = templates.TemplateResponse(
        request, template, values, status_code=status_code
    )
    return response


def _refused(
    request: Request, principal: Principal, status_code: int, message: str
) -> HTMLResponse:
    return _render(
        request,
        principal,
        "error.html",
        page="error",
        status_code=status_code,
        status=status_code,
        message=message,
    )


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request, principal: Reader) -> HTMLResponse:
    """The incident queue: counts, incidents over time, filters, the grid, live updates."""
    return _render(
        request,
        principal,
        "queue.html",
        page="incidents",
        products=PRODUCTS,
        max_tag_length=MAX_TAG_LENGTH,
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, principal: Reader, incident_id: str) -> HTMLResponse:
    """One incident. A tenant the user may not see answers the same 404 as no incident."""
    from xdrsync.twoway.submit import current_view

    ctx = context(request)
    try:
        tenant_id, defender_id = ctx.resolve(principal.user, incident_id)
    except HTTPException:
        return _refused(request, principal, 404, f"There is no incident {incident_id}.")
    if current_view(ctx.hub, tenant_id, "incident", defender_id) is None:
        return _refused(request, principal, 404, f"There is no incident {incident_id}.")
    return _render(
        request,
        principal,
        "incident.html",
        page="incidents",
        incident_id=incident_id,
        max_tag_length=MAX_TAG_LENGTH,
    )


@router.get("/hunting", response_class=HTMLResponse)
def hunting_page(request: Request, principal: Reader) -> HTMLResponse:
    """KQL over the workspace's tables: editor, examples, results, chart, downloads."""
    return _render(request, principal, "hunting.html", page="hunting")


@router.get("/conflicts", response_class=HTMLResponse)
def conflicts_page(request: Request, principal: Reader) -> HTMLResponse:
    """Edits waiting for a person to choose between the workspace's and Defender's values."""
    return _render(request, principal, "conflicts.html", page="conflicts")


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request, principal: Reader) -> HTMLResponse:
    """Per tenant and stream: how far behind, the last cycle, quarantined records."""
    return _render(request, principal, "health.html", page="health")


def _connectors(request: Request, principal: Principal) -> list[dict[str, Any]]:
    """The configured tenants the user sees, with the steps and permissions their setup
    needs (two-way or read-only, as configured)."""
    from xdrsync.connectors import required_permissions, setup_steps

    ctx = context(request)
    rows: list[dict[str, Any]] = []
    for tenant in ctx.config.tenants:
        if not principal.user.sees(tenant.tenant_id):
            continue
        row: dict[str, Any] = {
            "name": tenant.name,
            "tenant_id": tenant.tenant_id,
            "client_id": tenant.client_id,
            "graph_url": tenant.graph_url,
            "auth": "certificate" if tenant.certificate_path else "client secret",
            "two_way": tenant.two_way,
            "writes": ctx.config.writes_to(tenant),
            "permissions": [
                f"{p.name}: {p.why}" for p in required_permissions(ctx.config.writes_to(tenant))
            ],
            "steps": [str(step) for step in setup_steps(ctx.config.writes_to(tenant))],
        }
        rows.append(row)
    return rows


@router.get("/connectors", response_class=HTMLResponse)
def connectors_page(request: Request, principal: Reader) -> HTMLResponse:
    """The configured tenants with their live health and how each was set up (admins)."""
    if not principal.user.can("admin"):
        return _refused(request, principal, 403, "Connectors are for administrators.")
    return _render(
        request,
        principal,
        "connectors.html",
        page="connectors",
        connectors=_connectors(request, principal),
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, principal: Reader) -> HTMLResponse:
    """Users and everyone's API tokens (admins of every tenant)."""
    from xdrsync.console.admin import oversees

    if not oversees(principal.user):
        return _refused(
            request, principal, 403, "Users are managed by administrators of every tenant."
        )
    return _render(request, principal, "users.html", page="users", manage=True)


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, principal: Reader) -> HTMLResponse:
    """The signed-in user's own API tokens: create, copy once, revoke."""
    return _render(request, principal, "users.html", page="tokens", manage=False)


__all__ = ["router"]
