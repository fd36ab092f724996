"""A small two-tenant workload for destination tests: incidents with alerts and evidence,
committed to a hub in several versions, so the change sequence holds inserts and updates of
both kinds."""

from __future__ import annotations

from typing import Any

from xdrsync.hub import Hub, InboundBatch
from xdrsync.models import Alert, Incident

TENANT_A = "00000000-0000-0000-0000-0000000000a1"
TENANT_B = "00000000-0000-0000-0000-0000000000b2"
TENANT_NAMES = {TENANT_A: "contoso", TENANT_B: "fabrikam"}
# Sentinel's status vocabulary, which the log tables share.
SENTINEL_STATUS = {"active": "New", "inProgress": "Active", "resolved": "Closed"}


def _time(minute: int) -> str:
    return f"2026-11-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z"


def alert_json(tenant: str, alert_id: str, incident_id: str, minute: int) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "tenantId": tenant,
        "status": "new",
        "severity": "high",
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "microsoftDefenderForEndpoint",
        "title": f"Alert {alert_id}",
        "createdDateTime": _time(minute),
        "lastUpdateDateTime": _time(minute),
        "evidence": [
            {
                "@odata.type": "#microsoft.graph.security.ipEvidence",
                "ipAddress": f"10.0.{minute % 250}.1",
                "verdict": "suspicious",
            }
        ],
    }


def incident_json(
    tenant: str, incident_id: str, minute: int, status: str, alerts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": incident_id,
        "tenantId": tenant,
        "displayName": f"Incident {incident_id} at {minute}",
        "severity": "medium",
        "status": status,
        "classification": "unknown",
        "determination": "unknown",
        "customTags": ["xdrsync-test"],
        "comments": [],
        "createdDateTime": _time(0),
        "lastUpdateDateTime": _time(minute),
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}",
        "alerts": alerts,
    }


def commit_workload(hub: Hub, incidents: int = 6) -> dict[tuple[str, str], dict[str, str]]:
    """Commit ``incidents`` incidents per tenant, then a second version of every other one;
    returns what each incident is now: {(tenant, id): {"title", "status"}} (Sentinel's
    vocabulary)."""
    expected: dict[tuple[str, str], dict[str, str]] = {}
    for round_, statuses in enumerate((("active",), ("inProgress", "resolved"))):
        for tenant in (TENANT_A, TENANT_B):
            batch: list[Incident] = []
            for n in range(incidents):
                if round_ and n % 2:
                    continue
                incident_id = f"{1 + n}"
                minute = 1 + n + 60 * round_
                status = statuses[n % len(statuses)] if round_ else "active"
                alerts = [
                    alert_json(tenant, f"da{incident_id}-{k}", incident_id, minute) for k in (1, 2)
                ]
                payload = incident_json(tenant, incident_id, minute, status, alerts)
                batch.append(Incident.from_graph(payload))
                expected[(tenant, incident_id)] = {
                    "title": payload["displayName"],
                    "status": SENTINEL_STATUS[status],
                }
            hub.commit_batch(InboundBatch(tenant_id=tenant, stream="incidents", incidents=batch))
    return expected


def commit_alert_update(hub: Hub, tenant: str, incident_id: str, minute: int) -> Alert:
    """One alert changes on its own (the alerts_v2 stream): an alert change, no incident one."""
    payload = alert_json(tenant, f"da{incident_id}-1", incident_id, minute)
    payload["status"] = "inProgress"
    alert = Alert.from_graph(payload)
    hub.commit_batch(InboundBatch(tenant_id=tenant, stream="alerts", alerts=[alert]))
    return alert
