"""Graph's evolvable enumerations: members added after ``unknownFutureValue`` are answered as
``unknownFutureValue`` unless the request sends ``Prefer: include-unknown-enum-members``
(microsoft-apis.md §2.3, §2.5). A client that forgets the header reads an incident awaiting
the customer (``awaitingAction``) or an alert from Sentinel (``microsoftSentinel``) as an
unknown value, so the emulator answers that way too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

PREFER: Final = "include-unknown-enum-members"
UNKNOWN: Final = "unknownFutureValue"

#: incidentStatus after unknownFutureValue.
INCIDENT_STATUS: Final = frozenset({"awaitingAction"})
#: serviceSource and detectionSource after unknownFutureValue (v1.0).
SERVICE_SOURCE: Final = frozenset(
    {
        "microsoftDefenderForCloud",
        "microsoftSentinel",
        "microsoftInsiderRiskManagement",
        "microsoftThreatIntelligence",
        "microsoftSecurityForAI",
    }
)
DETECTION_SOURCE: Final = frozenset(
    {
        "microsoftDefenderForCloud",
        "microsoftDefenderForIoT",
        "microsoftDefenderForServers",
        "microsoftDefenderForStorage",
        "microsoftDefenderForDNS",
        "microsoftDefenderForDatabases",
        "microsoftDefenderForContainers",
        "microsoftDefenderForNetwork",
        "microsoftDefenderForAppService",
        "microsoftDefenderForKeyVault",
        "microsoftDefenderForResourceManager",
        "microsoftDefenderForApiManagement",
        "nrtAlerts",
        "scheduledAlerts",
        "microsoftDefenderThreatIntelligenceAnalytics",
        "builtInMl",
        "microsoftInsiderRiskManagement",
        "microsoftThreatIntelligence",
        "microsoftDefenderForAIServices",
        "securityCopilot",
        "microsoftSentinel",
    }
)
#: evidenceRemediationStatus after unknownFutureValue.
REMEDIATION_STATUS: Final = frozenset(
    {"active", "pendingApproval", "declined", "unremediated", "running", "partiallyRemediated"}
)
_ALERT: Final = (("serviceSource", SERVICE_SOURCE), ("detectionSource", DETECTION_SOURCE))


def wants_newer(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks for the members after ``unknownFutureValue``."""
    return prefer is not None and any(part.strip().lower() == PREFER for part in prefer.split(","))


def incident_as_answered(incident: Mapping[str, Any]) -> Mapping[str, Any]:
    """An incident (with its alerts, if it carries them) as Graph answers a client that did
    not ask for the newer members: the record itself when nothing is newer, else a copy."""
    alerts = incident.get("alerts")
    alerts = alerts if isinstance(alerts, list) else []
    shown = [alert_as_answered(a) for a in alerts]
    status_newer = incident.get("status") in INCIDENT_STATUS
    alerts_newer = any(s is not a for s, a in zip(shown, alerts, strict=True))
    if not (status_newer or alerts_newer):
        return incident
    copy = dict(incident)
    if status_newer:
        copy["status"] = UNKNOWN
    if alerts_newer:
        copy["alerts"] = shown
    return copy


def alert_as_answered(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    """An alert as Graph answers a client that did not ask for the newer members."""
    if not isinstance(alert, Mapping):
        return alert
    changed: dict[str, Any] = {key: UNKNOWN for key, newer in _ALERT if alert.get(key) in newer}
    evidence = alert.get("evidence")
    if isinstance(evidence, list) and any(
        isinstance(e, Mapping) and e.get("remediationStatus") in REMEDIATION_STATUS
        for e in evidence
    ):
        changed["evidence"] = [
            {**e, "remediationStatus": UNKNOWN}
            if isinstance(e, Mapping) and e.get("remediationStatus") in REMEDIATION_STATUS
            else e
            for e in evidence
        ]
    return {**alert, **changed} if changed else alert


__all__ = [
    "PREFER",
    "UNKNOWN",
    "alert_as_answered",
    "incident_as_answered",
    "wants_newer",
]
