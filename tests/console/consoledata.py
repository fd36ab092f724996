"""Graph-shaped incidents and alerts for the console tests, committed to a hub and indexed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from xdrsync.console.index import QueueIndex
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.hub import schema as s
from xdrsync.models import Alert, Incident

TENANT_A = "00000000-0000-0000-0000-0000000000a1"
TENANT_B = "00000000-0000-0000-0000-0000000000b2"
NAMES = {TENANT_A: "contoso", TENANT_B: "fabrikam"}
BASE = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def stamp(minutes: float) -> str:
    """A Graph timestamp (7 fractional digits) ``minutes`` after BASE."""
    moment = at(minutes)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 10:07d}Z"


def evidence(
    kind: str, name: str, verdict: str = "suspicious", minute: float = 0
) -> dict[str, Any]:
    base = {"createdDateTime": stamp(minute), "verdict": verdict, "remediationStatus": "none"}
    if kind == "ip":
        return {**base, "@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": name}
    if kind == "device":
        return {
            **base,
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            "mdeDeviceId": f"mde-{name}",
            "deviceDnsName": f"{name}.contoso.com",
            "hostName": name,
        }
    return {
        **base,
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "userAccount": {
            "accountName": name,
            "domainName": "CONTOSO",
            "azureAdUserId": f"aad-{name}",
            "userPrincipalName": f"{name}@contoso.com",
            "displayName": name.title(),
        },
    }


def alert_json(
    tenant: str,
    alert_id: str,
    incident_id: str,
    *,
    updated: float = 0,
    created: float = 0,
    source: str = "microsoftDefenderForEndpoint",
    category: str | None = "Execution",
    first: float | None = None,
    last: float | None = None,
    items: Sequence[dict[str, Any]] = (),
    title: str | None = None,
    status: str = "new",
    comments: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "tenantId": tenant,
        "status": status,
        "severity": "high",
        "serviceSource": source,
        "detectionSource": "microsoftDefenderForEndpoint",
        "productName": "Microsoft Defender for Endpoint",
        "category": category,
        "mitreTechniques": ["T1059.001"],
        "title": title or f"Alert {alert_id}",
        "createdDateTime": stamp(created),
        "lastUpdateDateTime": stamp(updated),
        "firstActivityDateTime": stamp(first) if first is not None else None,
        "lastActivityDateTime": stamp(last) if last is not None else None,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert_id}",
        "comments": list(comments),
        "evidence": list(items),
    }


def comment(text: str, minute: float = 0, author: str = "Ann Analyst") -> dict[str, Any]:
    return {"comment": text, "createdByDisplayName": author, "createdDateTime": stamp(minute)}


def incident_json(
    tenant: str,
    incident_id: str,
    *,
    updated: float = 0,
    created: float | None = 0,
    severity: str = "medium",
    status: str = "active",
    owner: str | None = None,
    tags: Sequence[str] = (),
    alerts: Sequence[dict[str, Any]] = (),
    comments: Sequence[dict[str, Any]] = (),
    name: str | None = None,
    redirect: str | None = None,
) -> dict[str, Any]:
    return {
        "id": incident_id,
        "tenantId": tenant,
        "displayName": name or f"Incident {incident_id}",
        "description": f"About {incident_id}",
        "severity": severity,
        "status": status,
        "classification": "unknown",
        "determination": "unknown",
        "assignedTo": owner,
        "customTags": list(tags),
        "systemTags": [],
        "comments": list(comments),
        "createdDateTime": stamp(created) if created is not None else None,
        "lastUpdateDateTime": stamp(updated),
        "redirectIncidentId": redirect,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}",
        "alerts": list(alerts),
    }


def commit(
    hub: Hub,
    tenant: str,
    incidents: Sequence[dict[str, Any]] = (),
    alerts: Sequence[dict[str, Any]] = (),
) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=tenant,
            stream="alerts" if alerts and not incidents else "incidents",
            incidents=[Incident.from_graph(i) for i in incidents],
            alerts=[Alert.from_graph(a) for a in alerts],
        )
    )


def runner(hub: Hub, batch_size: int = 500) -> DestinationRunner:
    return DestinationRunner(hub, QueueIndex(hub), batch_size=batch_size)


def index(hub: Hub, batch_size: int = 500) -> int:
    return runner(hub, batch_size).publish()


def rows(hub: Hub) -> dict[tuple[str, str], dict[str, Any]]:
    """queue_entry by (tenant, incident), without ``seq`` (a snapshot position)."""
    q = s.queue_entry
    with hub.reading() as conn:
        found = conn.execute(select(q)).mappings().all()
    return {
        (r["tenant_id"], r["incident_id"]): {k: v for k, v in r.items() if k != "seq"}
        for r in found
    }


def open_hub(folder: Path) -> Iterator[Hub]:
    """A new hub (SQLite in ``folder``) for a fixture to yield."""
    opened = Hub.open(default_url(folder))
    try:
        yield opened
    finally:
        opened.close()
