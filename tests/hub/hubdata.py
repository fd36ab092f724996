"""Graph-shaped payload builders for the hub tests (plain dicts, camelCase, as Graph sends), and
what the schema tests read of a migrated database."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from xdrsync.hub import Hub, InboundBatch
from xdrsync.hub.database import MIGRATIONS, VERSION_TABLE
from xdrsync.hub.schema import metadata
from xdrsync.models import Alert, Incident

TENANT = "00000000-0000-0000-0000-00000000000a"
OTHER_TENANT = "00000000-0000-0000-0000-00000000000b"
BASE = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def stamp(minutes: float = 0, *, extra_ticks: int = 0) -> str:
    """A Graph timestamp ``minutes`` after BASE, with 7 fractional digits."""
    moment = BASE + timedelta(minutes=minutes)
    ticks = moment.microsecond * 10 + extra_ticks
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ticks:07d}Z"


def evidence_json(n: int, kind: str = "device") -> dict[str, Any]:
    if kind == "device":
        return {
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            "createdDateTime": stamp(),
            "verdict": "suspicious",
            "remediationStatus": "none",
            "roles": [],
            "detailedRoles": [],
            "tags": [],
            "mdeDeviceId": f"mde-{n:04d}",
            "deviceDnsName": f"pc{n:04d}.contoso.com",
            "hostName": f"pc{n:04d}",
        }
    return {
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "createdDateTime": stamp(),
        "verdict": "unknown",
        "remediationStatus": "none",
        "roles": [],
        "detailedRoles": [],
        "tags": [],
        "userAccount": {
            "accountName": f"user{n}",
            "domainName": "CONTOSO",
            "userSid": f"S-1-5-21-{n}",
            "azureAdUserId": f"aad-{n}",
            "userPrincipalName": f"user{n}@contoso.com",
            "displayName": f"User {n}",
        },
    }


def comment_json(text: str, minutes: float = 0, author: str = "Ann Analyst") -> dict[str, Any]:
    return {"comment": text, "createdByDisplayName": author, "createdDateTime": stamp(minutes)}


def alert_json(
    alert_id: str,
    incident_id: str,
    updated: str,
    *,
    evidence: Sequence[dict[str, Any]] = (),
    status: str = "new",
    title: str = "Suspicious PowerShell",
    created: str | None = None,
    comments: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "providerAlertId": alert_id,
        "incidentId": incident_id,
        "status": status,
        "severity": "medium",
        "classification": None,
        "determination": None,
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "microsoftDefenderForEndpoint",
        "title": title,
        "description": "",
        "tenantId": TENANT,
        "createdDateTime": created or stamp(),
        "lastUpdateDateTime": updated,
        "comments": list(comments),
        "evidence": list(evidence),
    }


def incident_json(
    incident_id: str,
    updated: str,
    *,
    alerts: Sequence[dict[str, Any]] = (),
    status: str = "active",
    comments: Sequence[dict[str, Any]] = (),
    redirect: str | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "id": incident_id,
        "displayName": name or f"Incident {incident_id}",
        "severity": "medium",
        "status": status,
        "classification": "unknown",
        "determination": "unknown",
        "assignedTo": None,
        "customTags": list(tags),
        "systemTags": [],
        "comments": list(comments),
        "createdDateTime": stamp(),
        "lastUpdateDateTime": updated,
        "redirectIncidentId": redirect,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}",
        "tenantId": TENANT,
        "alerts": list(alerts),
    }


def incidents(*payloads: dict[str, Any]) -> list[Incident]:
    return [Incident.from_graph(p) for p in payloads]


def batch(
    *payloads: dict[str, Any],
    tenant: str = TENANT,
    state: dict[str, Any] | None = None,
    alerts: Sequence[dict[str, Any]] = (),
    stream: str = "incidents",
) -> InboundBatch:
    return InboundBatch(
        tenant_id=tenant,
        stream=stream,
        incidents=incidents(*payloads),
        alerts=[Alert.from_graph(a) for a in alerts],
        state=state,
    )


def page_of(
    count: int, updated: str, *, start: int = 0, alerts: int = 4, evidence: int = 5
) -> list[dict[str, Any]]:
    """``count`` incidents sharing ``updated``, each with ``alerts`` alerts of ``evidence`` items."""
    out = []
    for i in range(start, start + count):
        incident_id = str(10_000 + i)
        out.append(
            incident_json(
                incident_id,
                updated,
                alerts=[
                    alert_json(
                        f"da{incident_id}_{a}",
                        incident_id,
                        updated,
                        created=stamp(a),
                        evidence=[
                            evidence_json(i * 100 + a * 10 + e, "device" if e % 2 else "user")
                            for e in range(evidence)
                        ],
                    )
                    for a in range(alerts)
                ],
                comments=[comment_json(f"triage note for {incident_id}")],
            )
        )
    return out


def schema_differences(hub: Hub) -> list[Any]:
    """What autogenerate finds between the migrated database and ``schema.metadata``, less the
    one expression index, which SQLAlchemy cannot reflect: ``indexed_entity_key`` checks it."""

    def compared(item: Any, name: str | None, kind: str, reflected: bool, _other: Any) -> bool:
        return not (kind == "index" and name == "ix_evidence_entity")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        with hub.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "include_object": compared}
            )
            return list(compare_metadata(context, metadata))


def indexed_entity_key(hub: Hub) -> str:
    """The definition of the evidence entity index, as the database holds it."""
    with hub.engine.connect() as conn:
        if hub.engine.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE name = 'ix_evidence_entity'"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_evidence_entity'"
        return str(conn.execute(text(query)).scalar_one())


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Take the hub's schema to ``revision`` (up, or ``down``) with its own migrations, as an
    older or newer xdrsync would have left it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_table", VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def members(hub: Hub, incident_id: str) -> tuple[list[str], list[str], int]:
    """An incident's alerts as each of the hub's reads sees them: (get_incident's alerts,
    current_alerts, list_incidents' count)."""
    incident = hub.get_incident(TENANT, incident_id)
    assert incident is not None
    current = hub.current_alerts([(TENANT, incident_id)])[(TENANT, incident_id)]
    (summary,) = [s for s in hub.list_incidents(TENANT) if s.id == incident_id]
    return [a.id for a in incident.alerts], [a.id for a in current], summary.alert_count
