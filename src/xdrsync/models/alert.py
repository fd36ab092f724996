"""Alert: a Graph security alert (alerts_v2) with its comments and evidence (reference §2.4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import SerializeAsAny

from xdrsync.models.base import GraphModel
from xdrsync.models.comment import Comment
from xdrsync.models.enums import (
    AlertStatus,
    Classification,
    DetectionSource,
    Determination,
    InvestigationState,
    ServiceSource,
    Severity,
)
from xdrsync.models.evidence import Evidence

DEFAULT_PRODUCT: Final = "Microsoft Defender XDR"

#: Friendly product names by serviceSource (current Microsoft branding).
PRODUCT_NAMES: Final[Mapping[str, str]] = {
    "microsoftDefenderForEndpoint": "Microsoft Defender for Endpoint",
    "microsoftDefenderForIdentity": "Microsoft Defender for Identity",
    "microsoftDefenderForCloudApps": "Microsoft Defender for Cloud Apps",
    "microsoftDefenderForOffice365": "Microsoft Defender for Office 365",
    "microsoft365Defender": DEFAULT_PRODUCT,
    "azureAdIdentityProtection": "Microsoft Entra ID Protection",
    "microsoftAppGovernance": "Microsoft App Governance",
    "dataLossPrevention": "Microsoft Purview Data Loss Prevention",
    "microsoftDefenderForCloud": "Microsoft Defender for Cloud",
    "microsoftSentinel": "Microsoft Sentinel",
    "microsoftInsiderRiskManagement": "Microsoft Purview Insider Risk Management",
    "microsoftThreatIntelligence": "Microsoft Threat Intelligence",
    "microsoftSecurityForAI": "Microsoft Security for AI",
}

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+|[A-Z]+")
_SMALL_WORDS = frozenset({"for", "and", "of", "on", "in"})


def spell_out(camel_case: str) -> str:
    """`microsoftDefenderForServers` -> `Microsoft Defender for Servers` (future members)."""
    words = _WORD.findall(camel_case) or [camel_case]
    out = []
    for index, word in enumerate(words):
        if index and word.lower() in _SMALL_WORDS:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def product_for(service_source: ServiceSource | None, product_name: str | None = None) -> str:
    """Friendly product name for a serviceSource, else Graph's productName, else a spelling
    of the (future) serviceSource value."""
    if service_source is not None and service_source in PRODUCT_NAMES:
        return PRODUCT_NAMES[service_source]
    if product_name and product_name.strip():
        return product_name.strip()
    if service_source and service_source not in ("unknown", "unknownFutureValue"):
        return spell_out(service_source)
    return DEFAULT_PRODUCT


class Alert(GraphModel):
    """microsoft.graph.security.alert. Field names are the snake_case Graph names."""

    id: str | None = None
    provider_alert_id: str | None = None
    incident_id: str | None = None
    status: AlertStatus | None = None
    severity: Severity | None = None
    classification: Classification | None = None
    determination: Determination | None = None
    service_source: ServiceSource | None = None
    detection_source: DetectionSource | None = None
    product_name: str | None = None
    detector_id: str | None = None
    alert_policy_id: str | None = None
    tenant_id: str | None = None
    title: str | None = None
    description: str | None = None
    recommended_actions: str | None = None
    category: str | None = None
    categories: tuple[str, ...] = ()
    mitre_techniques: tuple[str, ...] = ()
    actor_display_name: str | None = None
    threat_display_name: str | None = None
    threat_family_name: str | None = None
    assigned_to: str | None = None
    alert_web_url: str | None = None
    incident_web_url: str | None = None
    created_date_time: datetime | None = None
    last_update_date_time: datetime | None = None
    resolved_date_time: datetime | None = None
    first_activity_date_time: datetime | None = None
    last_activity_date_time: datetime | None = None
    investigation_state: InvestigationState | None = None
    additional_data: Mapping[str, Any] | None = None
    custom_details: Mapping[str, Any] | None = None
    system_tags: tuple[str, ...] = ()
    comments: tuple[Comment, ...] = ()
    # SerializeAsAny: model_dump() writes each item with its own subclass's fields.
    evidence: tuple[SerializeAsAny[Evidence], ...] = ()

    @property
    def product(self) -> str:
        """Friendly name of the product that raised the alert, e.g. `Microsoft Defender for
        Endpoint`."""
        return product_for(self.service_source, self.product_name)


__all__ = ["DEFAULT_PRODUCT", "PRODUCT_NAMES", "Alert", "product_for", "spell_out"]
