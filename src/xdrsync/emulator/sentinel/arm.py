"""The Microsoft.SecurityInsights incidents and comments routes, as ARM serves them.

Every call needs ``api-version``; the subscription, resource group and workspace must be the
emulated ones (compared case-insensitively, as ARM does). Writes by a read-only app get ARM's
403 ``AuthorizationFailed`` before the body is read. Resources come back in ARM's envelope:
``id`` (the full resource path), ``name``, ``type``, ``etag``, ``properties``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request, Response

from xdrsync.emulator.sentinel.auth import AppGrant
from xdrsync.emulator.sentinel.errors import ArmError, bad_request
from xdrsync.emulator.sentinel.odata import (
    COMMENTS,
    INCIDENTS,
    ListSpec,
    next_link,
    parse_list_query,
    select_page,
)
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.sentinel.store import (
    Comment,
    CommentLimitError,
    EtagConflictError,
    Incident,
    UnknownCommentError,
    UnknownIncidentError,
)
from xdrsync.emulator.sentinel.validation import (
    MAX_COMMENTS,
    comment_message,
    incident_properties,
    read_resource_body,
)

PREFIX = (
    "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    "/providers/Microsoft.OperationalInsights/workspaces/{workspace}"
    "/providers/Microsoft.SecurityInsights"
)
INCIDENT_TYPE = "Microsoft.SecurityInsights/Incidents"
COMMENT_TYPE = "Microsoft.SecurityInsights/Incidents/Comments"
APP_AUTHOR_NAME = "xdrsync app"
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
JSON_TYPE = "application/json; charset=utf-8"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type=JSON_TYPE)


def conflict(name: str) -> ArmError:
    return ArmError(
        409, "Conflict", f"Newer version of resource '{name}' exists. Data was not saved"
    )


def incident_id(emulator: SentinelEmulator, name: str) -> str:
    return (
        f"{emulator.settings.workspace_path}/providers/Microsoft.SecurityInsights/Incidents/{name}"
    )


def incident_resource(emulator: SentinelEmulator, incident: Incident) -> dict[str, Any]:
    return {
        "id": incident_id(emulator, incident.name),
        "name": incident.name,
        "etag": incident.etag,
        "type": INCIDENT_TYPE,
        "properties": incident.properties,
    }


def comment_resource(
    emulator: SentinelEmulator, incident_name: str, comment: Comment
) -> dict[str, Any]:
    return {
        "id": f"{incident_id(emulator, incident_name)}/Comments/{comment.name}",
        "name": comment.name,
        "etag": comment.etag,
        "type": COMMENT_TYPE,
        "properties": comment.properties,
    }


def app_author(grant: AppGrant) -> dict[str, Any]:
    """The author Sentinel records for a comment written by an app (its service principal)."""
    return {
        "objectId": grant.client_id,
        "email": None,
        "name": APP_AUTHOR_NAME,
        "userPrincipalName": None,
    }


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as bad:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: {bad}",
        ) from None


def query_options(request: Request) -> dict[str, str]:
    """Query parameters by lower-cased name (ARM reads them case-insensitively)."""
    return {key.lower(): value for key, value in request.query_params.multi_items()}


class _Listed(Protocol):
    @property
    def properties(self) -> dict[str, Any]: ...


L = TypeVar("L", bound=_Listed)


def list_response(
    request: Request,
    items: list[L],
    spec: ListSpec,
    render: Callable[[L], dict[str, Any]],
    sequence: Callable[[L], int],
) -> Response:
    """One page of ``items`` under the request's list options, with ``nextLink`` if more."""
    query = parse_list_query(query_options(request), spec)
    page, after = select_page(items, query, spec, lambda r: r.properties, sequence)
    body: dict[str, Any] = {"value": [render(item) for item in page]}
    if after is not None:
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        body["nextLink"] = next_link(base, request.query_params.multi_items(), after)
    return json_response(body)


def add_arm_routes(app: FastAPI, emulator: SentinelEmulator) -> None:
    settings = emulator.settings
    store = emulator.store

    def check(request: Request, subscription_id: str, resource_group: str, workspace: str) -> None:
        version = query_options(request).get("api-version")
        if version is None:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not _API_VERSION.fullmatch(version):
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are dates "
                "such as '2025-09-01' or '2024-01-01-preview'.",
            )
        if subscription_id.lower() != settings.subscription_id.lower():
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription_id}' could not be found.",
            )
        if resource_group.lower() != settings.resource_group.lower():
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{resource_group}' could not be found.",
            )
        if workspace.lower() != settings.workspace.lower():
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.OperationalInsights/workspaces/{workspace}' under "
                f"resource group '{resource_group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )

    def grant_of(request: Request) -> AppGrant:
        grant: AppGrant = request.state.grant
        return grant

    def may_write(request: Request, action: str, scope: str) -> None:
        if not settings.read_only:
            return
        client = grant_of(request).client_id
        raise ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{client}' with object id '{client}' does not have authorization to "
            f"perform action 'Microsoft.SecurityInsights/{action}' over scope '{scope}' or the "
            "scope is invalid. If access was recently granted, please refresh your credentials.",
        )

    def missing_incident(name: str) -> ArmError:
        return ArmError(404, "NotFound", f"Incident '{name}' was not found.")

    # -- incidents -------------------------------------------------------------------------------

    @app.get(PREFIX + "/incidents")
    def list_incidents(
        subscription_id: str, resource_group: str, workspace: str, request: Request
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        with store.lock:
            return list_response(
                request,
                store.incidents(),
                INCIDENTS,
                lambda i: incident_resource(emulator, i),
                lambda i: i.number,
            )

    @app.get(PREFIX + "/incidents/{name}")
    def get_incident(
        subscription_id: str, resource_group: str, workspace: str, name: str, request: Request
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        with store.lock:
            try:
                return json_response(incident_resource(emulator, store.incident(name)))
            except UnknownIncidentError:
                raise missing_incident(name) from None

    @app.put(PREFIX + "/incidents/{name}")
    async def put_incident(
        subscription_id: str, resource_group: str, workspace: str, name: str, request: Request
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        may_write(request, "incidents/write", incident_id(emulator, name))
        properties, etag = read_resource_body(await read_json(request))
        written = incident_properties(properties)
        with store.lock:
            if emulator.draw_conflict():
                try:
                    store.touch(name)
                    emulator.count("fault:conflict")
                except UnknownIncidentError:
                    pass
            try:
                incident, created = store.put_incident(name, written, etag)
            except EtagConflictError:
                raise conflict(name) from None
            return json_response(incident_resource(emulator, incident), 201 if created else 200)

    @app.delete(PREFIX + "/incidents/{name}")
    def delete_incident(
        subscription_id: str, resource_group: str, workspace: str, name: str, request: Request
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        may_write(request, "incidents/delete", incident_id(emulator, name))
        return Response(status_code=200 if store.delete_incident(name) else 204)

    # -- comments --------------------------------------------------------------------------------

    @app.get(PREFIX + "/incidents/{name}/comments")
    def list_comments(
        subscription_id: str, resource_group: str, workspace: str, name: str, request: Request
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        with store.lock:
            try:
                comments = store.comments(name)
            except UnknownIncidentError:
                raise missing_incident(name) from None
            return list_response(
                request,
                comments,
                COMMENTS,
                lambda c: comment_resource(emulator, name, c),
                lambda c: c.sequence,
            )

    @app.get(PREFIX + "/incidents/{name}/comments/{comment_name}")
    def get_comment(
        subscription_id: str,
        resource_group: str,
        workspace: str,
        name: str,
        comment_name: str,
        request: Request,
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        with store.lock:
            try:
                comment = store.comment(name, comment_name)
            except UnknownIncidentError:
                raise missing_incident(name) from None
            except UnknownCommentError:
                raise ArmError(
                    404, "NotFound", f"Comment '{comment_name}' was not found."
                ) from None
            return json_response(comment_resource(emulator, name, comment))

    @app.put(PREFIX + "/incidents/{name}/comments/{comment_name}")
    async def put_comment(
        subscription_id: str,
        resource_group: str,
        workspace: str,
        name: str,
        comment_name: str,
        request: Request,
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        scope = f"{incident_id(emulator, name)}/Comments/{comment_name}"
        may_write(request, "incidents/comments/write", scope)
        properties, etag = read_resource_body(await read_json(request))
        message = comment_message(properties)
        try:
            comment, created = store.put_comment(
                name, comment_name, message, app_author(grant_of(request)), etag
            )
        except UnknownIncidentError:
            raise missing_incident(name) from None
        except EtagConflictError:
            raise conflict(comment_name) from None
        except CommentLimitError:
            raise bad_request(
                f"Incident '{name}' already has {MAX_COMMENTS} comments, the most it can have."
            ) from None
        with store.lock:
            body = comment_resource(emulator, name, comment)
            return json_response(body, 201 if created else 200)

    @app.delete(PREFIX + "/incidents/{name}/comments/{comment_name}")
    def delete_comment(
        subscription_id: str,
        resource_group: str,
        workspace: str,
        name: str,
        comment_name: str,
        request: Request,
    ) -> Response:
        check(request, subscription_id, resource_group, workspace)
        scope = f"{incident_id(emulator, name)}/Comments/{comment_name}"
        may_write(request, "incidents/comments/delete", scope)
        try:
            removed = store.delete_comment(name, comment_name)
        except UnknownIncidentError:
            raise missing_incident(name) from None
        return Response(status_code=200 if removed else 204)
