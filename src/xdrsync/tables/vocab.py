"""Value tables: Defender XDR's Graph values as Microsoft's Sentinel connector writes them.

Keys are Graph wire values, lower-cased, so PascalCase and camelCase spellings both match
(Graph examples use both). Sources: reference/microsoft-apis.md §1.3, §3.2, §3.7 and public
Sentinel queries; rows marked UNVERIFIED are our best reading, not a Microsoft statement.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import lru_cache
from typing import Final, NamedTuple

#: Provider name of XDR incidents in SecurityIncident (current Sentinel docs; older rows say
#: "Microsoft 365 Defender" - queries written for either should match on `in (...)`).
INCIDENT_PROVIDER_NAME: Final = "Microsoft XDR"
VENDOR_NAME: Final = "Microsoft"

#: Sentinel's severity enum has no "unknown"; Defender's `unknown` (legacy "UnSpecified") is
#: the least severe value Sentinel can hold. UNVERIFIED for `unknown`. A severity this table
#: does not know (a member newer than this version: xdrsync asks Graph for new members as
#: they are) is `NEWER_SEVERITY`.
SEVERITY: Final[dict[str, str]] = {
    "high": "High",
    "medium": "Medium",
    "low": "Low",
    "informational": "Informational",
    "unknown": "Informational",
    "unknownfuturevalue": "Informational",
}
#: A severity newer than this version (Graph's `critical`, say) reads as the highest Sentinel
#: has: shown as the lowest, it would hide the incident from every rule and query that looks
#: for the severe ones (`Severity == "High"`), where a new member is far likelier to be more
#: severe than less. The console shows Defender's own word. UNVERIFIED: how Microsoft's
#: connector maps a new member is not documented.
NEWER_SEVERITY: Final = "High"

#: Incident status, §1.3: Defender Active -> Sentinel New (documented); In progress -> Active,
#: Resolved -> Closed (the obvious reading, UNVERIFIED); merged (`redirected`) incidents are
#: closed by Sentinel (§1.6). `awaitingAction` is Defender Experts waiting on the customer:
#: someone is handling it, so Active (UNVERIFIED).
INCIDENT_STATUS: Final[dict[str, str]] = {
    "active": "New",
    "inprogress": "Active",
    "awaitingaction": "Active",
    "resolved": "Closed",
    "redirected": "Closed",
}
CLOSED: Final = "Closed"

#: Classification -> (Sentinel Classification, ClassificationReason), §1.3. Determination has no
#: Sentinel field: the documented table maps every determination of a class to one reason.
CLASSIFICATION: Final[dict[str, tuple[str, str | None]]] = {
    "truepositive": ("TruePositive", "SuspiciousActivity"),
    "falsepositive": ("FalsePositive", "InaccurateData"),
    "informationalexpectedactivity": ("BenignPositive", "SuspiciousButExpected"),
}
UNDETERMINED: Final = "Undetermined"

#: SecurityAlert.Status, whose vocabulary is New / InProgress / Resolved / Dismissed / Unknown.
ALERT_STATUS: Final[dict[str, str]] = {
    "new": "New",
    "inprogress": "InProgress",
    "resolved": "Resolved",
    "unknown": "Unknown",
    "unknownfuturevalue": "Unknown",
}


class Product(NamedTuple):
    """SecurityAlert.ProductName and SecurityAlert.ProviderName for one Defender service."""

    product_name: str
    provider_name: str


#: Graph serviceSource -> legacy product and provider names that Sentinel queries filter on
#: (the connector's own alert query lists these ProductName values; ProviderName values are
#: the ones public Sentinel queries use: MDATP, OATP, MCAS, IPC). Services added after the
#: connector was written fall back to Graph's productName. Provider names for
#: microsoft365Defender and the newer services are UNVERIFIED.
PRODUCTS: Final[dict[str, Product]] = {
    "microsoftdefenderforendpoint": Product(
        "Microsoft Defender Advanced Threat Protection", "MDATP"
    ),
    "microsoftdefenderforidentity": Product(
        "Azure Advanced Threat Protection", "Azure Advanced Threat Protection"
    ),
    "microsoftdefenderforoffice365": Product("Office 365 Advanced Threat Protection", "OATP"),
    "microsoftdefenderforcloudapps": Product("Microsoft Cloud App Security", "MCAS"),
    "microsoft365defender": Product("Microsoft 365 Defender", "Microsoft 365 Defender"),
    "azureadidentityprotection": Product("Azure Active Directory Identity Protection", "IPC"),
    "microsoftdefenderforcloud": Product("Azure Security Center", "Azure Security Center"),
    "microsoftsentinel": Product("Azure Sentinel", "ASI Scheduled Alerts"),
}

#: Graph serviceSource -> the display name advanced hunting (AlertInfo/AlertEvidence) shows:
#: the product's current name, spelled as Microsoft spells it ("for" in lower case, "365" as
#: its own word). Every serviceSource member of reference §2.5 but unknown/unknownFutureValue.
SERVICE_DISPLAY: Final[dict[str, str]] = {
    "microsoftdefenderforendpoint": "Microsoft Defender for Endpoint",
    "microsoftdefenderforidentity": "Microsoft Defender for Identity",
    "microsoftdefenderforoffice365": "Microsoft Defender for Office 365",
    "microsoftdefenderforcloudapps": "Microsoft Defender for Cloud Apps",
    "microsoft365defender": "Microsoft Defender XDR",
    "azureadidentityprotection": "Microsoft Entra ID Protection",
    "microsoftappgovernance": "App Governance",
    "datalossprevention": "Microsoft Data Loss Prevention",
    "microsoftdefenderforcloud": "Microsoft Defender for Cloud",
    "microsoftsentinel": "Microsoft Sentinel",
    "microsoftinsiderriskmanagement": "Microsoft Insider Risk Management",
    "microsoftthreatintelligence": "Microsoft Threat Intelligence",
    "microsoftsecurityforai": "Microsoft Security for AI",
}

#: Graph detectionSource -> advanced hunting's DetectionSource text, for every detectionSource
#: member of reference §2.5 but unknown/unknownFutureValue. The reference lists the Graph
#: members only, not the text Defender writes, so these are UNVERIFIED beyond the names
#: Defender's docs show (EDR, Antivirus, Custom detection, Custom TI, ...): a detection
#: source that is a product carries the product's name as SERVICE_DISPLAY spells it, the
#: Defender for Cloud plans their plan's name. Members added later are spelled out from
#: their camelCase (`spell_out`).
DETECTION_DISPLAY: Final[dict[str, str]] = {
    "microsoftdefenderforendpoint": "EDR",
    "antivirus": "Antivirus",
    "smartscreen": "SmartScreen",
    "customti": "Custom TI",
    "microsoftdefenderforoffice365": SERVICE_DISPLAY["microsoftdefenderforoffice365"],
    "automatedinvestigation": "Automated investigation",
    "microsoftthreatexperts": "Microsoft Defender Experts",
    "customdetection": "Custom detection",
    "microsoftdefenderforidentity": SERVICE_DISPLAY["microsoftdefenderforidentity"],
    "cloudappsecurity": SERVICE_DISPLAY["microsoftdefenderforcloudapps"],
    "microsoft365defender": SERVICE_DISPLAY["microsoft365defender"],
    "azureadidentityprotection": SERVICE_DISPLAY["azureadidentityprotection"],
    "manual": "Manual",
    "microsoftdatalossprevention": SERVICE_DISPLAY["datalossprevention"],
    "appgovernancepolicy": "App Governance Policy",
    "appgovernancedetection": "App Governance Detection",
    "microsoftdefenderforcloud": SERVICE_DISPLAY["microsoftdefenderforcloud"],
    "microsoftdefenderforiot": "Microsoft Defender for IoT",
    "microsoftdefenderforservers": "Microsoft Defender for Servers",
    "microsoftdefenderforstorage": "Microsoft Defender for Storage",
    "microsoftdefenderfordns": "Microsoft Defender for DNS",
    "microsoftdefenderfordatabases": "Microsoft Defender for Databases",
    "microsoftdefenderforcontainers": "Microsoft Defender for Containers",
    "microsoftdefenderfornetwork": "Microsoft Defender for Network",
    "microsoftdefenderforappservice": "Microsoft Defender for App Service",
    "microsoftdefenderforkeyvault": "Microsoft Defender for Key Vault",
    "microsoftdefenderforresourcemanager": "Microsoft Defender for Resource Manager",
    "microsoftdefenderforapimanagement": "Microsoft Defender for API Management",
    "nrtalerts": "NRT Alerts",
    "scheduledalerts": "Scheduled Alerts",
    "microsoftdefenderthreatintelligenceanalytics": (
        "Microsoft Defender Threat Intelligence Analytics"
    ),
    "builtinml": "Built-in ML",
    "microsoftinsiderriskmanagement": SERVICE_DISPLAY["microsoftinsiderriskmanagement"],
    "microsoftthreatintelligence": SERVICE_DISPLAY["microsoftthreatintelligence"],
    "microsoftdefenderforaiservices": "Microsoft Defender for AI Services",
    "securitycopilot": "Security Copilot",
    "microsoftsentinel": SERVICE_DISPLAY["microsoftsentinel"],
}

#: MITRE ATT&CK tactics as Sentinel spells them (PascalCase, no spaces). Graph `categories`
#: mix tactics with other labels ("Malware", "SuspiciousActivity"); only tactics go to Tactics.
MITRE_TACTICS: Final[frozenset[str]] = frozenset(
    {
        "Reconnaissance",
        "ResourceDevelopment",
        "InitialAccess",
        "Execution",
        "Persistence",
        "PrivilegeEscalation",
        "DefenseEvasion",
        "CredentialAccess",
        "Discovery",
        "LateralMovement",
        "Collection",
        "CommandAndControl",
        "Exfiltration",
        "Impact",
        "ImpairProcessControl",
        "InhibitResponseFunction",
        "PreAttack",
    }
)
_TACTIC_BY_KEY: Final = {t.lower(): t for t in MITRE_TACTICS}


#: `spell_out`'s words: an acronym Graph writes in camelCase (`IoT`, `customTi`, `builtInMl`),
#: a run of capitals, a capitalised or lower-case word, a number.
_WORD: Final = re.compile(r"IoT(?![a-z])|[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+|[A-Z]+")
_ACRONYMS: Final = {w.lower(): w for w in ("AI", "API", "DNS", "EDR", "IoT", "ML", "NRT", "TI")}
_SMALL_WORDS: Final = frozenset({"and", "for", "of"})


def wire(value: object) -> str | None:
    """The Graph wire string of an enum member or plain string (None when absent)."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def key(value: object) -> str:
    """Lookup key for the tables above: the wire value, lower-cased, "" when absent."""
    return (wire(value) or "").strip().lower()


def title_case(value: object) -> str | None:
    """`high` -> `High`, `noThreatsFound` -> `NoThreatsFound` (Sentinel's PascalCase values)."""
    if type(value) is str:  # as read from Graph's JSON, by far the most usual
        return value[:1].upper() + value[1:] if value else None
    text = wire(value)
    return text[:1].upper() + text[1:] if text else None


def spell_out(value: object) -> str | None:
    """`microsoftDefenderForIoT` -> `Microsoft Defender for IoT`: the display text of a value
    the tables above do not know yet, spelled as Microsoft spells product names ("for" in
    lower case, acronyms whole, `365` a word of its own)."""
    text = wire(value)
    if not text:
        return None
    words = _WORD.findall(text) or [text]
    return " ".join(
        _ACRONYMS.get(w.lower())
        or (w.lower() if i and w.lower() in _SMALL_WORDS else w[:1].upper() + w[1:])
        for i, w in enumerate(words)
    )


#: The longest text `tactic` keeps in its cache: Graph's text is bounded only by its page, and
#: a thousand long hostile ones would stay in memory.
CACHED_TEXT: Final = 256


def tactic(category: str) -> str | None:
    """The MITRE tactic a Graph category names, if it names one."""
    return _cached_tactic(category) if len(category) <= CACHED_TEXT else _tactic(category)


def _tactic(category: str) -> str | None:
    return _TACTIC_BY_KEY.get(re.sub(r"[\s_-]", "", category).lower())


#: A few dozen categories, asked about for every alert and incident.
_cached_tactic = lru_cache(maxsize=1024)(_tactic)


__all__ = [
    "ALERT_STATUS",
    "CACHED_TEXT",
    "CLASSIFICATION",
    "CLOSED",
    "DETECTION_DISPLAY",
    "INCIDENT_PROVIDER_NAME",
    "INCIDENT_STATUS",
    "MITRE_TACTICS",
    "NEWER_SEVERITY",
    "PRODUCTS",
    "SERVICE_DISPLAY",
    "SEVERITY",
    "UNDETERMINED",
    "VENDOR_NAME",
    "Product",
    "key",
    "spell_out",
    "tactic",
    "title_case",
    "wire",
]
