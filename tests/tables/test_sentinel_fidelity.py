"""Values an analyst compares with Defender and Sentinel: the spelling of DetectionSource,
the label types, the account entity's domains. Each test runs the query a ported rule or
hunting query would run, over rows made from the Graph samples."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from graph_samples import (
    all_incidents,
    false_positive_incident,
    multistage_incident,
    phishing_incident,
    redirected_incident,
)

from xdrsync.models import Incident
from xdrsync.models.enums import DetectionSource, ServiceSource
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.sentinel import (
    IncidentVersion,
    alert_info_row,
    incident_rows,
    incident_times,
    security_incident_row,
)
from xdrsync.tables.vocab import DETECTION_DISPLAY, SERVICE_DISPLAY, spell_out

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _store(path: Path, *graphs: dict[str, Any]) -> LogStore:
    store = LogStore(path / "logs.duckdb")
    for graph in graphs:
        store.append_batch(incident_rows(Incident.from_graph(graph), time_generated=NOW))
    return store


def q(store: LogStore, kql: str) -> list[dict[str, Any]]:
    return store.query(kql).as_dicts()


# -- DetectionSource as advanced hunting spells it -------------------------------------------


def test_hunting_queries_find_alerts_by_defenders_detection_source(tmp_path: Path) -> None:
    store = _store(tmp_path, *all_incidents().values())
    for table in ("AlertInfo", "AlertEvidence"):
        found = q(
            store,
            f'{table} | where DetectionSource == "Microsoft Defender for Office 365" '
            "| summarize by AlertId",
        )
        assert [r["AlertId"] for r in found] == ["fa5f6ea8d1-c7a1-4f4f-b6d5-1f22c6b3e2aa"], table
        found = q(
            store,
            f'{table} | where DetectionSource == "Microsoft Defender for Identity" '
            "| summarize by AlertId",
        )
        assert [r["AlertId"] for r in found] == ["aad1f6e9a1-3d2b-4c5e-8f7a-9b0c1d2e3f4a"], table
    spelled = q(store, "AlertInfo | summarize by DetectionSource | order by DetectionSource asc")
    assert [r["DetectionSource"] for r in spelled] == [
        "Antivirus",
        "EDR",
        "Microsoft Defender for Cloud Apps",
        "Microsoft Defender for Identity",
        "Microsoft Defender for Office 365",
        "Microsoft Entra ID Protection",
    ]


#: Graph's detectionSource members that name a product, and the product's serviceSource: the
#: two columns spell one product alike (reference §2.5).
SAME_PRODUCT = {
    "microsoftDefenderForOffice365": "microsoftDefenderForOffice365",
    "microsoftDefenderForIdentity": "microsoftDefenderForIdentity",
    "cloudAppSecurity": "microsoftDefenderForCloudApps",
    "microsoft365Defender": "microsoft365Defender",
    "azureAdIdentityProtection": "azureAdIdentityProtection",
    "microsoftDataLossPrevention": "dataLossPrevention",
    "microsoftDefenderForCloud": "microsoftDefenderForCloud",
    "microsoftInsiderRiskManagement": "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence": "microsoftThreatIntelligence",
    "microsoftSentinel": "microsoftSentinel",
}


@pytest.mark.parametrize(
    "member", [m for m in DetectionSource.MEMBERS if m not in ("unknown", "unknownFutureValue")]
)
def test_every_detection_source_has_its_display_text(member: str) -> None:
    alert = Incident.from_graph(phishing_incident()).alerts[0]
    row = alert_info_row(alert.model_copy(update={"detection_source": member}), time_generated=NOW)
    text = row["DetectionSource"]
    assert text == DETECTION_DISPLAY[member.lower()]  # known, not spelled out
    words = text.split()
    assert "For" not in words and "Io" not in words and "Ml" not in words and "Ti" not in words
    if member in SAME_PRODUCT:
        assert text == SERVICE_DISPLAY[SAME_PRODUCT[member].lower()]


def test_every_service_source_has_its_display_text() -> None:
    known = [m for m in ServiceSource.MEMBERS if m not in ("unknown", "unknownFutureValue")]
    assert [m for m in known if m.lower() not in SERVICE_DISPLAY] == []


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("microsoftDefenderForIoTEdge", "Microsoft Defender for IoT Edge"),
        ("microsoftDefenderForAIAgents", "Microsoft Defender for AI Agents"),
        ("microsoftDefenderForApiGateways", "Microsoft Defender for API Gateways"),
        ("microsoftDefenderForDNSResolvers", "Microsoft Defender for DNS Resolvers"),
        ("customTiFeeds", "Custom TI Feeds"),
        ("microsoft365Copilot", "Microsoft 365 Copilot"),
    ],
)
def test_a_detection_source_added_later_is_spelled_as_microsoft_spells_products(
    member: str, expected: str
) -> None:
    alert = Incident.from_graph(phishing_incident()).alerts[0]
    row = alert_info_row(alert.model_copy(update={"detection_source": member}), time_generated=NOW)
    assert row["DetectionSource"] == expected
    assert spell_out(member) == expected


# -- Labels: User or AutoAssigned (Sentinel's only two label types, reference §3.2) ----------


def test_labels_are_the_users_tags_or_assigned_by_the_service(tmp_path: Path) -> None:
    tagged_merge = redirected_incident()
    tagged_merge.update(id="2972400", customTags=["Redirected"])  # Defender's own merge tag
    store = _store(tmp_path, *all_incidents().values(), tagged_merge)
    labels = q(
        store,
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
        "| mv-expand Labels | where isnotempty(Labels) "
        "| project IncidentNumber, Name = tostring(Labels.labelName), "
        "LabelType = tostring(Labels.labelType)",
    )
    assert sorted((r["IncidentNumber"], r["Name"], r["LabelType"]) for r in labels) == [
        (2972395, "Defender Experts", "AutoAssigned"),  # a system tag
        (2972395, "Demo", "User"),  # an analyst's tag
        (2972397, "build-server", "User"),
        (2972399, "Redirected", "AutoAssigned"),  # Sentinel's merge tag
        (2972400, "Redirected", "AutoAssigned"),
    ]
    automation = q(
        store,
        "SecurityIncident | mv-expand Labels "
        '| where tostring(Labels.labelType) !in ("User", "AutoAssigned") | count',
    )
    assert automation == [{"Count": 0}]


# -- The account entity: NetBIOS domain in NTDomain, DNS domain in DnsDomain ------------------


def _with_user_domain(graph: dict[str, Any], domain: str) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    for alert in graph["alerts"]:
        for item in alert["evidence"]:
            if item["@odata.type"].endswith("userEvidence"):
                item["userAccount"] = {**item["userAccount"], "domainName": domain}
    return graph


def test_account_entities_keep_the_netbios_and_the_dns_domain_apart(tmp_path: Path) -> None:
    dns = _with_user_domain(phishing_incident(), "contoso.com")
    netbios = _with_user_domain(multistage_incident(), "CONTOSO")
    store = _store(tmp_path, dns, netbios)
    accounts = q(
        store,
        "SecurityAlert | extend E = parse_json(Entities) | mv-expand E "
        '| where tostring(E.Type) == "account" and tostring(E.Name) == "kaic" '
        "| summarize by NTDomain = tostring(E.NTDomain), DnsDomain = tostring(E.DnsDomain)",
    )
    assert sorted((r["NTDomain"], r["DnsDomain"]) for r in accounts) == [
        ("", "contoso.com"),
        ("CONTOSO", ""),
    ]


def test_an_incident_closed_before_it_was_first_read_closes_when_its_alerts_were_resolved() -> None:
    """A backfill reads most incidents already closed: their ClosedTime is when the alerts
    were resolved, not the later update that is the first version recorded; an incident seen
    closing keeps the time of the version that closed it."""
    incident = Incident.from_graph(false_positive_incident())
    modified = incident.last_update_date_time
    assert modified is not None
    resolved = datetime(2021, 9, 20, 16, 0, tzinfo=UTC)  # its alert's resolvedDateTime
    read_closed = incident_times([IncidentVersion(1, modified, True)])[1]
    row = security_incident_row(incident, time_generated=modified, times=read_closed)
    assert row["ClosedTime"] == resolved
    seen_closing = incident_times(
        [
            IncidentVersion(1, datetime(2021, 9, 20, 9, 0, tzinfo=UTC), False),
            IncidentVersion(2, modified, True),
        ]
    )[2]
    row = security_incident_row(incident, time_generated=modified, times=seen_closing)
    assert row["ClosedTime"] == modified
