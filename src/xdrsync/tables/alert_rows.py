"""Pure mapping of Defender XDR alerts to SecurityAlert, AlertInfo and AlertEvidence rows.

Every column of each published schema is present (None where Defender has no value), spelled
the way Microsoft's Defender XDR connector and Defender's advanced hunting tables spell them.
The value tables live in `vocab`, Sentinel's entity objects in `entities`, the per-evidence
AlertEvidence columns in `evidence_columns`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xdrsync.tables.encode import compact_json, iso_z
from xdrsync.tables.entities import compromised_entity, evidence_kind, sentinel_entities
from xdrsync.tables.evidence_columns import (
    entity_type,
    evidence_columns,
    evidence_direction,
    evidence_role,
)
from xdrsync.tables.schemas import ALERT_EVIDENCE, ALERT_INFO, SECURITY_ALERT, table_schema
from xdrsync.tables.vocab import (
    ALERT_STATUS,
    DETECTION_DISPLAY,
    PRODUCTS,
    SERVICE_DISPLAY,
    SEVERITY,
    VENDOR_NAME,
    Product,
    key,
    spell_out,
    tactic,
    wire,
)

if TYPE_CHECKING:
    from xdrsync.models import Alert, Evidence

Row = dict[str, Any]


def empty_row(table: str) -> Row:
    return dict.fromkeys(table_schema(table).column_names)


def severity(value: object) -> str:
    return SEVERITY.get(key(value), "Informational")


def unique(values: Iterable[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if value:
            seen.setdefault(value, None)
    return list(seen)


def iso(value: datetime | None) -> str | None:
    return iso_z(value) if value is not None else None


def _raw(evidence: Evidence) -> Mapping[str, Any]:
    # Entities and AlertEvidence read the Graph JSON itself: it holds every property of every
    # evidence type, including types this version has no model for (UnknownEvidence).
    return evidence.raw


def product(alert: Alert) -> Product:
    """ProductName/ProviderName for an alert: legacy Sentinel names by Graph serviceSource."""
    known = PRODUCTS.get(key(alert.service_source))
    if known is not None:
        return known
    name = alert.product_name or spell_out(alert.service_source) or "Microsoft Defender XDR"
    return Product(name, name)


def alert_tactics(alert: Alert) -> list[str]:
    """MITRE tactics named by the alert's categories (Graph mixes in non-tactic labels)."""
    return unique(tactic(c) for c in (*alert.categories, alert.category or "") if c)


def split_techniques(techniques: Iterable[str]) -> tuple[list[str], list[str]]:
    """(technique ids, sub-technique ids): `T1566.001` counts for `T1566` and as a sub-technique."""
    ids = [t.strip() for t in techniques if t and t.strip()]
    return unique(t.split(".", 1)[0] for t in ids), unique(t for t in ids if "." in t)


def _evidence(alert: Alert) -> list[tuple[str | None, Mapping[str, Any]]]:
    return [(e.odata_type, _raw(e)) for e in alert.evidence]


# -- SecurityAlert --------------------------------------------------------------------------


def _extended_properties(alert: Alert) -> Row:
    # Sentinel keeps user-defined properties (custom details) and the provider's extra
    # properties here; Graph's free-form additionalData and customDetails go first, so our
    # keys (the names public Sentinel queries read: IncidentId, ThreatName, ...) win a clash.
    extra = {**(alert.additional_data or {}), **(alert.custom_details or {})}
    ours = {
        "IncidentId": alert.incident_id,
        "ServiceSource": wire(alert.service_source),
        "DetectionSource": wire(alert.detection_source),
        "ProductName": alert.product_name,
        "Category": alert.category,
        "Categories": list(alert.categories),
        "MitreTechniques": list(alert.mitre_techniques),
        "AlertWebUrl": alert.alert_web_url,
        "IncidentWebUrl": alert.incident_web_url,
        "DetectorId": alert.detector_id,
        "AlertPolicyId": alert.alert_policy_id,
        "ThreatName": alert.threat_display_name,
        "ThreatFamilyName": alert.threat_family_name,
        "ActorName": alert.actor_display_name,
        "InvestigationState": wire(alert.investigation_state),
        "SystemTags": list(alert.system_tags),
        "Classification": wire(alert.classification),
        "Determination": wire(alert.determination),
        "AssignedTo": alert.assigned_to,
        "LastUpdateDateTime": iso(alert.last_update_date_time),
        "ResolvedDateTime": iso(alert.resolved_date_time),
    }
    return {**extra, **{k: v for k, v in ours.items() if v not in (None, [], "")}}


def _resource_id(evidence: Sequence[tuple[str | None, Mapping[str, Any]]]) -> str | None:
    for odata_type, raw in evidence:
        if evidence_kind(odata_type) == "azureResource" and raw.get("resourceId"):
            return str(raw["resourceId"])
    return None


def security_alert_row(
    alert: Alert, *, time_generated: datetime, tenant_id: str | None = None
) -> Row:
    """One SecurityAlert row for this version of the alert (`tenant_id`: fallback tenant)."""
    names = product(alert)
    evidence = _evidence(alert)
    techniques, sub_techniques = split_techniques(alert.mitre_techniques)
    start = alert.first_activity_date_time or alert.created_date_time
    row = empty_row(SECURITY_ALERT)
    row.update(
        {
            "AlertLink": alert.alert_web_url,
            "AlertName": alert.title,
            "AlertSeverity": severity(alert.severity),
            "AlertType": alert.detector_id or alert.category,
            "CompromisedEntity": compromised_entity(evidence),
            "Description": alert.description,
            "DisplayName": alert.title,
            "EndTime": alert.last_activity_date_time or start,
            "Entities": compact_json(sentinel_entities(evidence)),
            "ExtendedProperties": compact_json(_extended_properties(alert)),
            "IsIncident": False,
            "ProcessingEndTime": alert.created_date_time,
            "ProductName": names.product_name,
            "ProviderName": names.provider_name,
            "RemediationSteps": (
                compact_json([alert.recommended_actions]) if alert.recommended_actions else None
            ),
            "ResourceId": _resource_id(evidence),
            "SourceSystem": "Detection",
            "StartTime": start,
            "Status": ALERT_STATUS.get(key(alert.status), "Unknown"),
            "SystemAlertId": alert.id,
            "Tactics": ", ".join(alert_tactics(alert)) or None,
            "Techniques": compact_json(techniques) if techniques else None,
            "TenantId": alert.tenant_id or tenant_id,
            "TimeGenerated": time_generated,
            "Type": SECURITY_ALERT,
            "VendorName": VENDOR_NAME,
            "VendorOriginalId": alert.provider_alert_id,
            "SubTechniques": compact_json(sub_techniques) if sub_techniques else None,
        }
    )
    return row


# -- AlertInfo / AlertEvidence ------------------------------------------------------------------


def _service_display(alert: Alert) -> str | None:
    return SERVICE_DISPLAY.get(key(alert.service_source)) or spell_out(alert.service_source)


def _detection_display(alert: Alert) -> str | None:
    return DETECTION_DISPLAY.get(key(alert.detection_source)) or spell_out(alert.detection_source)


def alert_info_row(alert: Alert, *, time_generated: datetime, tenant_id: str | None = None) -> Row:
    """One AlertInfo row (advanced hunting's alert table) for this version of the alert."""
    row = empty_row(ALERT_INFO)
    row.update(
        {
            "TenantId": alert.tenant_id or tenant_id,
            "TimeGenerated": time_generated,
            "Timestamp": alert.created_date_time,
            "AlertId": alert.id,
            "Title": alert.title,
            "Category": alert.category or (alert.categories[0] if alert.categories else None),
            "Severity": severity(alert.severity),
            "ServiceSource": _service_display(alert),
            "DetectionSource": _detection_display(alert),
            "AttackTechniques": compact_json(list(alert.mitre_techniques)),
            "Type": ALERT_INFO,
        }
    )
    return row


def alert_evidence_rows(
    alert: Alert, *, time_generated: datetime, tenant_id: str | None = None
) -> list[Row]:
    """One AlertEvidence row per evidence item of this version of the alert."""
    common = {
        "TenantId": alert.tenant_id or tenant_id,
        "TimeGenerated": time_generated,
        "AlertId": alert.id,
        "Title": alert.title,
        "Categories": compact_json(list(alert.categories)),
        "AttackTechniques": compact_json(list(alert.mitre_techniques)),
        "ServiceSource": _service_display(alert),
        "DetectionSource": _detection_display(alert),
        "Severity": severity(alert.severity),
        "Type": ALERT_EVIDENCE,
    }
    rows: list[Row] = []
    for item in alert.evidence:
        raw = _raw(item)
        roles = [r for r in (wire(x) for x in item.roles) if r]
        detailed = [str(d) for d in item.detailed_roles]
        row = empty_row(ALERT_EVIDENCE)
        row.update(common)
        row.update(evidence_columns(item.odata_type, raw))
        row.update(
            {
                "Timestamp": item.created_date_time or alert.created_date_time,
                "EntityType": entity_type(item.odata_type),
                "EvidenceRole": evidence_role(roles, detailed),
                "EvidenceDirection": evidence_direction(roles),
                "AdditionalFields": dict(raw),
            }
        )
        rows.append(row)
    return rows


__all__ = [
    "alert_evidence_rows",
    "alert_info_row",
    "alert_tactics",
    "empty_row",
    "iso",
    "product",
    "security_alert_row",
    "severity",
    "split_techniques",
    "unique",
]
