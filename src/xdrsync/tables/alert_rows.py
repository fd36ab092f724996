"""Pure mapping of Defender XDR alerts to SecurityAlert, AlertInfo and AlertEvidence rows.

Every column of each published schema is present (None where Defender has no value), spelled
the way Microsoft's Defender XDR connector and Defender's advanced hunting tables spell them.
The value tables live in `vocab`, Sentinel's entity objects in `entities`, the per-evidence
AlertEvidence columns in `evidence_columns`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from xdrsync.models import Alert
from xdrsync.models.evidence import evidence_kind
from xdrsync.models.wire import parse_datetime
from xdrsync.tables.encode import compact_json, iso_z
from xdrsync.tables.entities import KindedEvidence, entity_list, main_entity
from xdrsync.tables.evidence_columns import kind_columns, kind_entity_type, role_and_direction
from xdrsync.tables.schemas import ALERT_EVIDENCE, ALERT_INFO, SECURITY_ALERT, table_schema
from xdrsync.tables.scope import row_tenant
from xdrsync.tables.vocab import (
    ALERT_STATUS,
    DETECTION_DISPLAY,
    NEWER_SEVERITY,
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

Row = dict[str, Any]


def empty_row(table: str) -> Row:
    return dict.fromkeys(table_schema(table).column_names)


def severity(value: object) -> str:
    """Sentinel's severity for Defender's: one of High, Medium, Low, Informational (a missing
    one is Informational, one newer than this version `NEWER_SEVERITY`)."""
    wanted = key(value)
    return SEVERITY.get(wanted, NEWER_SEVERITY if wanted else "Informational")


def unique(values: Iterable[str | None]) -> list[str]:
    """The non-empty values, each once, in the order they first come."""
    return list(dict.fromkeys(filter(None, values)))


def iso(value: datetime | None) -> str | None:
    return iso_z(value) if value is not None else None


#: An alert's evidence as Graph JSON, one object per item.
EvidenceJson = Sequence[Mapping[str, Any]]


def evidence_json(alert: Alert, given: EvidenceJson | None = None) -> EvidenceJson:
    """The evidence the alert tables read: `given`, else the Graph JSON of the alert's models.

    Entities and AlertEvidence read the JSON itself: it holds every property of every
    evidence type, including types this version has no model for (UnknownEvidence). A caller
    that holds the alert's JSON can therefore pass its `evidence` and parse the alert without
    it: the log tables' worker does, and skips most of the parse (evidence is about four
    fifths of an alert's parse time on the bench corpus).
    """
    return [e.raw for e in alert.evidence] if given is None else given


def alert_for_rows(payload: Mapping[str, Any]) -> tuple[Alert, EvidenceJson]:
    """An alert version's Graph JSON as the alert tables read it: the alert parsed without
    its evidence, and the evidence as JSON (`payload` is not changed)."""
    items = payload.get("evidence") or []
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        Alert.from_graph(payload)  # raises the ModelError that names what is wrong
    body = {k: v for k, v in payload.items() if k != "evidence"}
    return Alert.from_graph(body), items


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


def _kinded(evidence: EvidenceJson) -> KindedEvidence:
    # Each item's kind once, for the readers of SecurityAlert's columns.
    return [(evidence_kind(raw.get("@odata.type")), raw) for raw in evidence]


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
    # `v or`: a true value is none of the empty ones, and is kept without comparing it.
    return {**extra, **{k: v for k, v in ours.items() if v or v not in (None, [], "")}}


def _resource_id(evidence: KindedEvidence) -> str | None:
    for kind, raw in evidence:
        found = raw.get("resourceId")
        if kind == "azureResource" and found and isinstance(found, str):
            return found
    return None


def security_alert_row(
    alert: Alert,
    *,
    time_generated: datetime,
    tenant_id: str | None = None,
    evidence: EvidenceJson | None = None,
) -> Row:
    """One SecurityAlert row for this version of the alert (`tenant_id`: the configured
    tenant, see `scope.row_tenant`; `evidence`: see `evidence_json`)."""
    names = product(alert)
    kinded = _kinded(evidence_json(alert, evidence))
    techniques, sub_techniques = split_techniques(alert.mitre_techniques)
    start = alert.first_activity_date_time or alert.created_date_time
    row = empty_row(SECURITY_ALERT)
    row.update(
        {
            "AlertLink": alert.alert_web_url,
            "AlertName": alert.title,
            "AlertSeverity": severity(alert.severity),
            "AlertType": alert.detector_id or alert.category,
            "CompromisedEntity": main_entity(kinded),
            "Description": alert.description,
            "DisplayName": alert.title,
            "EndTime": alert.last_activity_date_time or start,
            "Entities": entity_list(kinded).json(),
            "ExtendedProperties": compact_json(_extended_properties(alert)),
            "IsIncident": False,
            "ProcessingEndTime": alert.created_date_time,
            "ProductName": names.product_name,
            "ProviderName": names.provider_name,
            "RemediationSteps": (
                compact_json([alert.recommended_actions]) if alert.recommended_actions else None
            ),
            "ResourceId": _resource_id(kinded),
            "SourceSystem": "Detection",
            "StartTime": start,
            "Status": ALERT_STATUS.get(key(alert.status), "Unknown"),
            "SystemAlertId": alert.id,
            "Tactics": ", ".join(alert_tactics(alert)) or None,
            "Techniques": compact_json(techniques) if techniques else None,
            "TenantId": row_tenant(tenant_id, alert.tenant_id),
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
            "TenantId": row_tenant(tenant_id, alert.tenant_id),
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


def _created(value: object) -> datetime | None:
    """An item's `createdDateTime` as a datetime (None: absent, or not a date-time)."""
    try:
        return parse_datetime(value)
    except ValueError:  # not a date-time: an item whose values do not fit its type
        return None


def alert_evidence_rows(
    alert: Alert,
    *,
    time_generated: datetime,
    tenant_id: str | None = None,
    evidence: EvidenceJson | None = None,
) -> list[Row]:
    """One AlertEvidence row per evidence item of this version of the alert (`evidence`: see
    `evidence_json`), with every column of the table."""
    columns = empty_row(ALERT_EVIDENCE)
    return [
        columns | values
        for values in alert_evidence_values(
            alert, time_generated=time_generated, tenant_id=tenant_id, evidence=evidence
        )
    ]


def alert_evidence_values(
    alert: Alert,
    *,
    time_generated: datetime,
    tenant_id: str | None = None,
    evidence: EvidenceJson | None = None,
) -> list[Row]:
    """`alert_evidence_rows` with only the columns the mapping sets (the others are null):
    what the log store writes, as it leaves nulls out anyway (`encode.NdjsonWriter`). An
    item sets about 20 of the table's 46 columns; a whole row's other keys were filled, then
    walked again to be dropped. The 48,820 rows of a 2,000-incident backfill: made in 0.34
    CPU-s instead of 0.45, encoded in 0.57 instead of 0.62."""
    common: Row = {
        "TenantId": row_tenant(tenant_id, alert.tenant_id),
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
    # An alert's items are usually created at one time, the alert's: their Timestamp is one
    # datetime, parsed once, and its text is written once too (`encode.NdjsonWriter` keeps
    # the last text of each column by identity). The 48,820 items of a 2,000-incident
    # backfill had 8,069 times, one per alert.
    created_text: object = None
    created: datetime | None = None
    for raw in evidence_json(alert, evidence):
        kind = evidence_kind(raw.get("@odata.type"))
        row = common | kind_columns(kind, raw)
        text = raw.get("createdDateTime")
        if type(text) is not str or text != created_text:
            created_text, created = text, _created(text)
        row["Timestamp"] = created or alert.created_date_time
        row["EntityType"] = kind_entity_type(kind)
        # Read from the JSON as the model would (roles are compared without case), of any
        # shape: an item that does not fit its type is kept as Graph sent it.
        row["EvidenceRole"], row["EvidenceDirection"] = role_and_direction(
            raw.get("roles"), raw.get("detailedRoles")
        )
        # The item's own dict, not a copy (rows are read, never changed: 0.05 CPU-s for the
        # 48,820 items of a 2,000-incident backfill); another mapping is made a dict.
        row["AdditionalFields"] = raw if type(raw) is dict else dict(raw)
        rows.append(row)
    return rows


__all__ = [
    "alert_evidence_rows",
    "alert_evidence_values",
    "alert_for_rows",
    "alert_info_row",
    "alert_tactics",
    "empty_row",
    "evidence_json",
    "iso",
    "product",
    "security_alert_row",
    "severity",
    "split_techniques",
    "unique",
]
