"""Generated incidents look, correlate and age like Defender XDR's, and are reproducible."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.emulator import catalog
from xdrsync.emulator.stories import entity_keys, generate_incidents

TENANT = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")

# Every property of Graph v1.0 incident (§2.2) and alert (§2.4), plus what the docs' examples show.
INCIDENT_KEYS = {
    "@odata.type", "id", "incidentWebUrl", "redirectIncidentId", "tenantId", "displayName",
    "createdDateTime", "lastUpdateDateTime", "assignedTo", "classification", "determination",
    "status", "severity", "customTags", "comments", "systemTags", "description", "summary",
    "lastModifiedBy", "resolvingComment", "priorityScore", "alerts",
}  # fmt: skip
ALERT_KEYS = {
    "@odata.type", "id", "providerAlertId", "incidentId", "status", "severity", "classification",
    "determination", "serviceSource", "detectionSource", "productName", "detectorId",
    "alertPolicyId", "tenantId", "title", "description", "recommendedActions", "category",
    "categories", "mitreTechniques", "actorDisplayName", "threatDisplayName", "threatFamilyName",
    "assignedTo", "alertWebUrl", "incidentWebUrl", "createdDateTime", "lastUpdateDateTime",
    "resolvedDateTime", "firstActivityDateTime", "lastActivityDateTime", "investigationState",
    "additionalData", "customDetails", "systemTags", "comments", "evidence",
}  # fmt: skip
EVIDENCE_BASE = {
    "@odata.type", "createdDateTime", "verdict", "remediationStatus", "remediationStatusDetails",
    "roles", "detailedRoles", "tags",
}  # fmt: skip
# Type-specific fields (reference §2.6 table, from the generated v1.0 SDK).
EVIDENCE_KEYS = {
    "deviceEvidence": "azureAdDeviceId defenderAvStatus deviceDnsName dnsDomain firstSeenDateTime "
    "healthStatus hostName ipInterfaces lastExternalIpAddress lastIpAddress loggedOnUsers "
    "mdeDeviceId ntDomain onboardingStatus osBuild osPlatform rbacGroupId rbacGroupName "
    "resourceAccessEvents riskScore version vmMetadata",
    "userEvidence": "userAccount stream",
    "mailboxEvidence": "displayName primaryAddress upn userAccount",
    "analyzedMessageEvidence": "antiSpamDirection attachmentsCount deliveryAction deliveryLocation "
    "internetMessageId language networkMessageId p1Sender p2Sender receivedDateTime "
    "recipientEmailAddress senderIp subject threatDetectionMethods threats urlCount urls urn",
    "mailClusterEvidence": "clusterBy clusterByValue emailCount networkMessageIds query urn",
    "ipEvidence": "countryLetterCode ipAddress location stream",
    "urlEvidence": "url",
    "fileEvidence": "detectionStatus fileDetails mdeDeviceId",
    "fileHashEvidence": "algorithm value",
    "processEvidence": "detectionStatus imageFile mdeDeviceId parentProcessCreationDateTime "
    "parentProcessId parentProcessImageFile processCommandLine processCreationDateTime processId "
    "userAccount",
    "cloudApplicationEvidence": "appId displayName instanceId instanceName saasAppId stream",
    "oauthApplicationEvidence": "appId displayName objectId publisher",
    "registryKeyEvidence": "registryHive registryKey",
    "registryValueEvidence": "mdeDeviceId registryHive registryKey registryValue registryValueName "
    "registryValueType",
    "securityGroupEvidence": "activeDirectoryObjectGuid displayName distinguishedName friendlyName "
    "securityGroupId sid",
    "dnsEvidence": "dnsServerIp domainName hostIpAddress ipAddresses",
    "azureResourceEvidence": "resourceId resourceName resourceType",
    "amazonResourceEvidence": "amazonAccountId amazonResourceId resourceName resourceType",
    "cloudLogonSessionEvidence": "account browser deviceName operatingSystem previousLogonDateTime "
    "protocol sessionId startUtcDateTime userAgent",
    "networkConnectionEvidence": "destinationAddress destinationPort protocol sourceAddress "
    "sourcePort",
    "malwareEvidence": "category files name processes",
    "servicePrincipalEvidence": "appId appOwnerTenantId servicePrincipalName "
    "servicePrincipalObjectId servicePrincipalType tenantId",
    "teamsMessageEvidence": "campaignId channelId deliveryAction deliveryLocation files groupId "
    "isExternal isOwned lastModifiedDateTime messageDirection messageId owningTenantId "
    "parentMessageId receivedDateTime recipients senderFromAddress senderIP sourceAppName "
    "sourceId subject suspiciousRecipients threadId threadType urls",
}
PRODUCT_NAMES = {p.service_source: p.product_name for p in catalog.PRODUCTS.values()}
ID_SHAPES = {
    "microsoftDefenderForEndpoint": r"^da\d{18}_-?\d+$",
    "microsoft365Defender": r"^ed\d{18}_-?\d+$",
    "microsoftDefenderForOffice365": r"^fa[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$",
    "microsoftDefenderForIdentity": r"^aa[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$",
    "microsoftDefenderForCloudApps": r"^ca[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}$",
    "azureAdIdentityProtection": r"^ad[0-9a-f]{32}$",
}


def _generate(count: int = 300, seed: int = 11, **kwargs: Any) -> list[dict[str, Any]]:
    return generate_incidents(seed=seed, count=count, tenant_id=TENANT, now=NOW, **kwargs)


@pytest.fixture(scope="module")
def incidents() -> list[dict[str, Any]]:
    return _generate()


def _alerts(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [alert for incident in incidents for alert in incident["alerts"]]


def _time(stamp: str) -> datetime:
    assert STAMP.match(stamp), stamp
    return datetime.fromisoformat(stamp[:26]).replace(tzinfo=UTC)


def test_same_arguments_give_identical_incidents_and_other_seeds_differ() -> None:
    first = _generate(40, seed=5)
    assert first == _generate(40, seed=5)
    assert first != _generate(40, seed=6)
    other_tenant = generate_incidents(seed=5, count=40, tenant_id="other", now=NOW)
    assert [i["displayName"] for i in first] != [i["displayName"] for i in other_tenant]


def test_every_documented_property_is_present(incidents: list[dict[str, Any]]) -> None:
    for incident in incidents:
        assert set(incident) == INCIDENT_KEYS
        for alert in incident["alerts"]:
            assert set(alert) == ALERT_KEYS
            for item in alert["evidence"]:
                kind = item["@odata.type"].removeprefix("#microsoft.graph.security.")
                expected = set(EVIDENCE_KEYS.get(kind, "").split())
                assert EVIDENCE_BASE | expected <= set(item), kind
    comments = [c for i in incidents for c in i["comments"]]
    assert comments and all(
        set(c) == {"comment", "createdByDisplayName", "createdDateTime"} for c in comments
    )


def test_ids_are_unique_sequential_and_alerts_point_at_their_incident(
    incidents: list[dict[str, Any]],
) -> None:
    assert [i["id"] for i in incidents] == [str(n) for n in range(1, len(incidents) + 1)]
    alert_ids = [a["id"] for a in _alerts(incidents)]
    assert len(alert_ids) == len(set(alert_ids))
    for incident in incidents:
        assert incident["incidentWebUrl"] == (
            f"https://security.microsoft.com/incidents/{incident['id']}?tid={TENANT}"
        )
        for alert in incident["alerts"]:
            assert alert["incidentId"] == incident["id"]
            assert alert["incidentWebUrl"] == incident["incidentWebUrl"]
            assert alert["alertWebUrl"] == (
                f"https://security.microsoft.com/alerts/{alert['id']}?tid={TENANT}"
            )
            assert re.match(ID_SHAPES[alert["serviceSource"]], alert["id"]), alert["id"]
    later = _generate(5, first_id=9001)
    assert [i["id"] for i in later] == ["9001", "9002", "9003", "9004", "9005"]


def test_merged_incidents_redirect_to_a_survivor_holding_their_alerts(
    incidents: list[dict[str, Any]],
) -> None:
    by_id = {i["id"]: i for i in incidents}
    redirected = [i for i in incidents if i["status"] == "redirected"]
    assert 2 <= len(redirected) <= len(incidents) // 10
    for source in redirected:
        target = by_id[source["redirectIncidentId"]]
        assert target["status"] != "redirected" and int(target["id"]) > int(source["id"])
        assert source["alerts"] == [] and source["customTags"] == []
        # The moved alerts were created before the survivor itself was.
        assert min(a["createdDateTime"] for a in target["alerts"]) < target["createdDateTime"]
    others = [i for i in incidents if i["status"] != "redirected"]
    assert all(i["redirectIncidentId"] is None for i in others)


def test_all_products_report_with_their_own_names(incidents: list[dict[str, Any]]) -> None:
    alerts = _alerts(incidents[:200])
    sources = Counter(a["serviceSource"] for a in alerts)
    assert {
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForIdentity",
        "microsoftDefenderForOffice365",
        "microsoftDefenderForCloudApps",
    } <= set(sources)
    assert {"azureAdIdentityProtection", "microsoft365Defender"} <= set(sources)
    for alert in alerts:
        assert alert["productName"] == PRODUCT_NAMES[alert["serviceSource"]]
        assert all(re.match(r"^T\d{4}(\.\d{3})?$", t) for t in alert["mitreTechniques"])
        assert alert["severity"] in ("informational", "low", "medium", "high")
    detections = {a["detectionSource"] for a in alerts}
    assert {"antivirus", "cloudAppSecurity", "microsoftDefenderForIdentity"} <= detections


def test_evidence_is_varied_and_plentiful(incidents: list[dict[str, Any]]) -> None:
    alerts = _alerts(incidents)
    kinds = Counter(e["@odata.type"] for a in alerts for e in a["evidence"])
    assert len(kinds) >= 20
    alive = [i for i in incidents if i["status"] != "redirected"]
    per_incident = len(alerts) / len(incidents)
    evidence_per_incident = sum(kinds.values()) / len(incidents)
    assert 3.0 <= per_incident <= 5.5
    assert 18 <= evidence_per_incident <= 35
    survivors = {i["redirectIncidentId"] for i in incidents}
    assert all(1 <= len(i["alerts"]) <= 8 for i in alive if i["id"] not in survivors)


def test_alerts_of_an_incident_share_its_users_and_devices(
    incidents: list[dict[str, Any]],
) -> None:
    for incident in incidents:
        alerts = incident["alerts"]
        if len(alerts) < 2:
            continue
        counts = Counter(k for a in alerts for k in entity_keys({"alerts": [a]}))
        assert max(counts.values()) >= 2, incident["id"]
        # The same device is described the same way in every alert that names it.
        seen: dict[str, str] = {}
        for alert in alerts:
            for item in alert["evidence"]:
                if item["@odata.type"].endswith(".deviceEvidence"):
                    name = seen.setdefault(item["mdeDeviceId"], item["deviceDnsName"])
                    assert name == item["deviceDnsName"]
    users = Counter(k for i in incidents for k in entity_keys(i) if k.startswith("user:"))
    assert users.most_common(1)[0][1] >= 3  # some people are hit again and again


def test_times_are_ordered_and_within_the_span(incidents: list[dict[str, Any]]) -> None:
    created = [_time(i["createdDateTime"]) for i in incidents]
    assert created == sorted(created)
    assert created[0] >= NOW - SPAN and created[-1] <= NOW
    for incident in incidents:
        start, updated = _time(incident["createdDateTime"]), _time(incident["lastUpdateDateTime"])
        assert start <= updated <= NOW
        for comment in incident["comments"]:
            assert start <= _time(comment["createdDateTime"]) <= updated
        for alert in incident["alerts"]:
            made = _time(alert["createdDateTime"])
            assert made <= _time(alert["lastUpdateDateTime"]) <= updated
            first, last = (
                _time(alert["firstActivityDateTime"]),
                _time(alert["lastActivityDateTime"]),
            )
            assert first <= last <= made
            if alert["resolvedDateTime"]:
                assert made <= _time(alert["resolvedDateTime"]) <= NOW
            for item in alert["evidence"]:
                assert item["createdDateTime"] == alert["createdDateTime"]


def test_worked_incidents_are_consistent(incidents: list[dict[str, Any]]) -> None:
    statuses = Counter(i["status"] for i in incidents)
    assert statuses["active"] and statuses["inProgress"] and statuses["resolved"]
    assert any(i["customTags"] for i in incidents)
    analysts = re.compile(r"^[a-z]+\.[a-z]+@[a-z]+\.com$")
    for incident in incidents:
        if incident["status"] == "resolved":
            classification = incident["classification"]
            assert incident["determination"] in catalog.DETERMINATIONS[classification]
            assert analysts.match(incident["assignedTo"]) and incident["resolvingComment"]
            assert all(a["status"] == "resolved" for a in incident["alerts"])
        elif incident["status"] == "inProgress":
            assert analysts.match(incident["assignedTo"])
        if incident["status"] != "resolved":
            assert incident["classification"] == "unknown"
        ranks = ["informational", "low", "medium", "high"]
        if incident["alerts"]:
            worst = max(incident["alerts"], key=lambda a: ranks.index(a["severity"]))
            assert incident["severity"] == worst["severity"]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), count=st.integers(0, 30), days=st.integers(0, 90))
def test_any_seed_gives_well_formed_incidents(seed: int, count: int, days: int) -> None:
    span = timedelta(days=days)
    incidents = _generate(count, seed=seed, span=span)
    assert len(incidents) == count
    ids = {i["id"] for i in incidents}
    for incident in incidents:
        assert NOW - span <= _time(incident["createdDateTime"]) <= NOW
        assert _time(incident["lastUpdateDateTime"]) <= NOW
        if incident["status"] == "redirected":
            assert incident["redirectIncidentId"] in ids
        assert all(a["incidentId"] == incident["id"] for a in incident["alerts"])
