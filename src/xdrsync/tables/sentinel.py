"""Pure mapping of Defender XDR incidents to Sentinel's Log Analytics rows.

One SecurityIncident row per incident version, with every column of the published schema
present (None where Defender has no value) and values spelled the way Microsoft's Defender XDR
connector writes them (reference/microsoft-apis.md §1.3, §1.6, §3.7), so that KQL written for
Sentinel runs unchanged. The alert tables (SecurityAlert, AlertInfo, AlertEvidence) are mapped
in `alert_rows` and re-exported here, so this module is the one entry point.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from xdrsync.tables.alert_rows import (
    alert_evidence_rows,
    alert_evidence_values,
    alert_info_row,
    alert_tactics,
    empty_row,
    iso,
    product,
    security_alert_row,
    severity,
    split_techniques,
    unique,
)
from xdrsync.tables.schemas import ALERT_EVIDENCE, ALERT_INFO, SECURITY_ALERT, SECURITY_INCIDENT
from xdrsync.tables.scope import row_tenant
from xdrsync.tables.vocab import (
    CLASSIFICATION,
    CLOSED,
    INCIDENT_PROVIDER_NAME,
    INCIDENT_STATUS,
    UNDETERMINED,
    key,
)

if TYPE_CHECKING:
    from xdrsync.models import Incident

Row = dict[str, Any]

#: Namespace of IncidentName GUIDs. Sentinel names each incident with a GUID; ours is uuid5 of
#: "<tenant id>/<incident id>" in this namespace, so the same incident gets the same name on
#: every machine and every re-sync, and two tenants' incident 42 never collide.
INCIDENT_NAME_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:xdrsync:SecurityIncident")
REDIRECTED_LABEL: Final = "Redirected"
USER_LABEL: Final = "User"
AUTO_LABEL: Final = "AutoAssigned"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_INT32_MAX: Final = 2**31 - 1


def incident_name(tenant_id: str | None, incident_id: str) -> str:
    return str(uuid.uuid5(INCIDENT_NAME_NAMESPACE, f"{(tenant_id or '').lower()}/{incident_id}"))


def _min(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _max(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _email_like(text: str | None) -> str | None:
    return text if text and _EMAIL.match(text) else None


def _labels(incident: Incident, redirected: bool) -> list[Row]:
    # Sentinel's labelType is `User` or `AutoAssigned` (§3.2): analysts' custom tags are the
    # user's labels; Defender's system tags and the tag a merge adds are the service's.
    labels = [{"labelName": t, "labelType": USER_LABEL} for t in unique(incident.custom_tags)]
    labels += [{"labelName": t, "labelType": AUTO_LABEL} for t in unique(incident.system_tags)]
    # Sentinel tags the absorbed incident of a merge "Redirected" (§1.6). Defender adds the
    # same tag itself (as a tag like any other), so it is only added when it is not there.
    if redirected:
        merge_tags = [lb for lb in labels if lb["labelName"].lower() == "redirected"]
        for label in merge_tags:
            label["labelType"] = AUTO_LABEL
        if not merge_tags:
            labels.append({"labelName": REDIRECTED_LABEL, "labelType": AUTO_LABEL})
    return labels


def _owner(assigned_to: str | None) -> Row:
    # Sentinel's owner object; Defender only knows a free-text assignee (usually a UPN).
    email = _email_like(assigned_to)
    return {
        "objectId": None,
        "email": email,
        "assignedTo": assigned_to or None,
        "userPrincipalName": email,
    }


def _comments(incident: Incident) -> list[Row]:
    return [
        {
            "message": c.comment,
            "createdTimeUtc": iso(c.created_date_time),
            "author": {
                "name": c.created_by_display_name,
                "email": _email_like(c.created_by_display_name),
                "userPrincipalName": _email_like(c.created_by_display_name),
                "objectId": None,
            },
        }
        for c in incident.comments
    ]


def _incident_number(incident_id: str) -> int | None:
    # IncidentNumber is int32 in Log Analytics; Defender ids are numeric strings well inside it.
    return int(incident_id) if incident_id.isdigit() and int(incident_id) <= _INT32_MAX else None


def incident_status(status: object, redirected: bool) -> str:
    """Sentinel's Status for a Defender status; a merged (redirected) incident is closed."""
    return CLOSED if redirected else INCIDENT_STATUS.get(key(status), "New")


class IncidentVersion(NamedTuple):
    """One version of an incident that xdrsync recorded (a change in the hub), as the rows of
    its later versions read it."""

    seq: int
    modified: datetime | None  # its lastUpdateDateTime
    closed: bool  # its Status is Closed
    alert_ids: Sequence[str] | None = None  # the alerts it named (None: read without them)


@dataclass(frozen=True)
class IncidentTimes:
    """A SecurityIncident row's values that Sentinel sets once and keeps, so that they come
    from the incident's recorded versions rather than from the version the row shows."""

    first_modified: datetime | None = None  # FirstModifiedTime
    closed: datetime | None = None  # ClosedTime, when the row's version is closed
    #: Closed when first read (a backfill): when it was closed is not in the history.
    closed_before_read: bool = False
    listed: tuple[str, ...] = ()  # the alerts of the last version that named any
    first_activity: datetime | None = None  # of `listed`: for a row whose incident has no
    last_activity: datetime | None = None  # alerts any more (merged into another)


def incident_times(versions: Iterable[IncidentVersion]) -> dict[int, IncidentTimes]:
    """The times of each of an incident's versions, given every version recorded up to the
    last one, oldest (lowest seq) first. Versions recorded later never change a row's times,
    so rows rebuilt from the hub (a replay) get the same values.

    * FirstModifiedTime: the first version is the incident as created (or as first read);
      the next one is its first modification.
    * ClosedTime: when the incident was last closed: the first version of the run of closed
      versions the row's version belongs to (a comment after closing does not move it;
      closing again after a reopen does). An incident already closed when first read was
      closed before that: its row takes the time its alerts were resolved.
    * The alerts of the last version that named any: a merged incident's alerts move to the
      other incident, and its rows keep the activity times they gave.
    """
    times: dict[int, IncidentTimes] = {}
    first_modified: datetime | None = None
    closed: datetime | None = None
    before_read = False
    listed: tuple[str, ...] = ()
    for index, version in enumerate(versions):
        if index == 1:
            first_modified = version.modified
        if not version.closed:
            closed, before_read = None, False
        elif closed is None:
            closed, before_read = version.modified, index == 0
        listed = tuple(version.alert_ids or ()) or listed
        times[version.seq] = IncidentTimes(first_modified, closed, before_read, listed)
    return times


def security_incident_row(
    incident: Incident,
    *,
    time_generated: datetime,
    workspace_tenant_id: str | None = None,
    times: IncidentTimes | None = None,
) -> Row:
    """One SecurityIncident row for this version of the incident.

    `time_generated` is when the row is written (Sentinel: when this version was recorded).
    `workspace_tenant_id` is the configured tenant the incident was read from, the row's
    `TenantId` (`scope.row_tenant`). `times` are what the incident's earlier versions say
    (`incident_times`); without them this version is taken as the first one recorded.
    """
    tenant = row_tenant(workspace_tenant_id, incident.tenant_id)
    incident_id = incident.id or ""
    redirected = incident.is_redirected
    status = incident_status(incident.status, redirected)
    classification, reason = CLASSIFICATION.get(key(incident.classification), (None, None))
    if classification is None and status == CLOSED:
        classification = UNDETERMINED  # Sentinel closes with "Undetermined" when not set
    alerts = incident.alerts
    techniques = split_techniques(t for a in alerts for t in a.mitre_techniques)[0]
    times = times or IncidentTimes()
    closed_time = None
    if status == CLOSED:
        closed_time = times.closed or incident.last_update_date_time
        resolved = _max(a.resolved_date_time for a in alerts)
        if (
            resolved is not None
            and not redirected
            and (times.closed_before_read or not times.closed)
        ):
            closed_time = resolved
    first_activity = _min(a.first_activity_date_time for a in alerts)
    last_activity = _max(a.last_activity_date_time for a in alerts)
    if not alerts:  # none now (merged into another incident): the times they gave stay
        first_activity, last_activity = times.first_activity, times.last_activity
    row = empty_row(SECURITY_INCIDENT)
    row.update(
        {
            "TenantId": tenant,
            "TimeGenerated": time_generated,
            "IncidentName": incident_name(tenant, incident_id),
            "Title": incident.display_name,
            "Description": incident.description,
            "Severity": severity(incident.severity),
            "Status": status,
            "Classification": classification,
            "ClassificationComment": incident.resolving_comment,
            "ClassificationReason": reason,
            "Owner": _owner(incident.assigned_to),
            "ProviderName": INCIDENT_PROVIDER_NAME,
            "ProviderIncidentId": incident.id,
            "FirstActivityTime": first_activity,
            "LastActivityTime": last_activity,
            "FirstModifiedTime": times.first_modified,
            "LastModifiedTime": incident.last_update_date_time,
            "CreatedTime": incident.created_date_time,
            "ClosedTime": closed_time,
            "IncidentNumber": _incident_number(incident_id),
            "RelatedAnalyticRuleIds": [],
            "AlertIds": list(incident.alert_ids),
            "BookmarkIds": [],
            "Comments": _comments(incident),
            "Labels": _labels(incident, redirected),
            "IncidentUrl": incident.incident_web_url,
            "AdditionalData": {
                "alertsCount": len(alerts),
                "bookmarksCount": 0,
                "commentsCount": len(incident.comments),
                "alertProductNames": unique(product(a).product_name for a in alerts),
                "tactics": unique(t for a in alerts for t in alert_tactics(a)),
                "techniques": techniques,
                "providerIncidentUrl": incident.incident_web_url,
            },
            "ModifiedBy": incident.last_modified_by,
            "SourceSystem": "Azure",
            "Type": SECURITY_INCIDENT,
            "Tasks": [],
        }
    )
    return row


def incident_rows(
    incident: Incident,
    *,
    time_generated: datetime,
    workspace_tenant_id: str | None = None,
) -> dict[str, list[Row]]:
    """Rows for every table from one incident version and the alerts it carries."""
    tenant = row_tenant(workspace_tenant_id, incident.tenant_id)
    alerts = incident.alerts
    kwargs: dict[str, Any] = {"time_generated": time_generated, "tenant_id": tenant}
    return {
        SECURITY_INCIDENT: [
            security_incident_row(
                incident, time_generated=time_generated, workspace_tenant_id=workspace_tenant_id
            )
        ],
        SECURITY_ALERT: [security_alert_row(a, **kwargs) for a in alerts],
        ALERT_INFO: [alert_info_row(a, **kwargs) for a in alerts],
        ALERT_EVIDENCE: [r for a in alerts for r in alert_evidence_rows(a, **kwargs)],
    }


__all__ = [
    "AUTO_LABEL",
    "INCIDENT_NAME_NAMESPACE",
    "REDIRECTED_LABEL",
    "USER_LABEL",
    "IncidentTimes",
    "IncidentVersion",
    "alert_evidence_rows",
    "alert_evidence_values",
    "alert_info_row",
    "alert_tactics",
    "incident_name",
    "incident_rows",
    "incident_status",
    "incident_times",
    "product",
    "security_alert_row",
    "security_incident_row",
    "split_techniques",
]
