"""Graph-shaped incidents (with alerts and evidence) for the log-table tests.

Imported by name (`from graph_samples import ...`): a module name of its own, because several
test folders have a `conftest` and the name `conftest` is not unique.

Shapes and values follow the Microsoft Graph security API v1.0 documentation examples
(security-list-incidents, security-alert, alertEvidence subtypes): one multi-stage endpoint
incident, a phishing incident spanning Office 365 and Cloud Apps, a false positive, a benign
positive from Entra ID Protection (with an evidence type Sentinel has no entity for) and a
merged ("redirected") incident.
"""

from __future__ import annotations

from typing import Any

TENANT = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
DEVICE_ID = "73e7e2de709dff64ef64b1d0c30e67fab63279db"
Json = dict[str, Any]


def _alert(alert_id: str, incident_id: str, **fields: Any) -> Json:
    base: Json = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert_id,
        "providerAlertId": alert_id.split("_", 1)[0],
        "incidentId": incident_id,
        "status": "new",
        "severity": "medium",
        "classification": "unknown",
        "determination": "unknown",
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "microsoftDefenderForEndpoint",
        "productName": "Microsoft Defender for Endpoint",
        "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
        "tenantId": TENANT,
        "title": "Suspicious activity",
        "description": "An alert.",
        "recommendedActions": "Collect artifacts and determine scope",
        "category": "Execution",
        "categories": ["Execution"],
        "mitreTechniques": [],
        "assignedTo": None,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert_id}?tid={TENANT}",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}?tid={TENANT}",
        "actorDisplayName": None,
        "threatDisplayName": None,
        "threatFamilyName": None,
        "createdDateTime": "2021-04-27T12:19:27.7211305Z",
        "lastUpdateDateTime": "2021-05-02T14:19:01.3266667Z",
        "resolvedDateTime": None,
        "firstActivityDateTime": "2021-04-26T07:45:50.116Z",
        "lastActivityDateTime": "2021-05-02T07:56:58.222Z",
        "comments": [],
        "evidence": [],
        "additionalData": {},
    }
    base.update(fields)
    return base


def _ev(kind: str, roles: list[str] | None = None, **fields: Any) -> Json:
    return {
        "@odata.type": f"#microsoft.graph.security.{kind}Evidence",
        "createdDateTime": "2021-04-27T12:19:27.7211305Z",
        "verdict": "suspicious",
        "remediationStatus": "none",
        "remediationStatusDetails": None,
        "roles": roles or [],
        "detailedRoles": [],
        "tags": [],
        **fields,
    }


USER_ACCOUNT: Json = {
    "accountName": "kaic",
    "domainName": "CONTOSO",
    "userSid": "S-1-5-21-1111111111-2222222222-3333333333-1105",
    "azureAdUserId": "5e5b3d1a-4f7c-4a2b-9a0e-5f1c2a3b4c5d",
    "userPrincipalName": "KaiC@contoso.onmicrosoft.com",
    "displayName": "Kai Carter",
}

FILE_DETAILS: Json = {
    "sha1": "5f1e8acedc065031aad553b710838eb366cfee9a",
    "sha256": "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec",
    "fileName": "MsSense.exe",
    "filePath": "C:\\Program Files\\temp",
    "fileSize": 6136392,
    "filePublisher": "Microsoft Corporation",
}


def _device(host: str, roles: list[str] | None = None, **fields: Any) -> Json:
    return _ev(
        "device",
        roles,
        detailedRoles=["Main device"] if roles else [],
        mdeDeviceId=fields.pop("mdeDeviceId", DEVICE_ID),
        azureAdDeviceId=None,
        deviceDnsName=f"{host}.contoso.com",
        hostName=host,
        dnsDomain="contoso.com",
        ntDomain="CONTOSO",
        osPlatform="Windows10",
        osBuild=22424,
        version="22H2",
        healthStatus="active",
        riskScore="medium",
        onboardingStatus="onboarded",
        defenderAvStatus="updated",
        lastIpAddress="10.1.2.3",
        lastExternalIpAddress="203.0.113.7",
        loggedOnUsers=[{"accountName": "kaic", "domainName": "CONTOSO"}],
        **fields,
    )


def multistage_incident() -> Json:
    """Endpoint + identity incident; MDE alert with rich evidence, MDI alert on the same host."""
    mde = _alert(
        "da637551227677560813_-961444813",
        "2972395",
        title="Suspicious execution of hidden file",
        severity="medium",
        category="DefenseEvasion",
        categories=["DefenseEvasion", "Execution"],
        mitreTechniques=["T1564.001", "T1059"],
        detectionSource="antivirus",
        threatDisplayName="Trojan:Win32/Wacatac",
        threatFamilyName="Wacatac",
        firstActivityDateTime="2021-04-26T07:45:50.116Z",
        lastActivityDateTime="2021-05-02T07:56:58.222Z",
        evidence=[
            _device("WS-0142", ["compromised"]),
            _ev(
                "file", detectionStatus="detected", mdeDeviceId=DEVICE_ID, fileDetails=FILE_DETAILS
            ),
            _ev(
                "process",
                processId=4780,
                parentProcessId=668,
                processCommandLine='"MsSense.exe" -hidden',
                processCreationDateTime="2021-08-12T12:43:19.0772577Z",
                parentProcessCreationDateTime="2021-08-12T07:39:09.0909239Z",
                detectionStatus="detected",
                mdeDeviceId=DEVICE_ID,
                imageFile=FILE_DETAILS,
                parentProcessImageFile={"fileName": "services.exe", "filePath": "C:\\Windows"},
                userAccount={
                    "accountName": "SYSTEM",
                    "domainName": "NT AUTHORITY",
                    "userSid": "S-1-5-18",
                },
            ),
            _ev(
                "registryKey",
                registryKey="SYSTEM\\CONTROLSET001\\Services\\SENSE",
                registryHive="HKEY_LOCAL_MACHINE",
            ),
            _ev(
                "registryValue",
                mdeDeviceId=DEVICE_ID,
                registryKey="SYSTEM\\CONTROLSET001\\Services\\SENSE",
                registryHive="HKEY_LOCAL_MACHINE",
                registryValue="31-00-00-00",
                registryValueName="Start",
                registryValueType="Binary",
            ),
            _ev("ip", ["destination"], ipAddress="198.51.100.23", countryLetterCode="NL"),
            _ev("url", ["destination"], url="http://malicious.example.net/stage2"),
        ],
    )
    mdi = _alert(
        "aad1f6e9a1-3d2b-4c5e-8f7a-9b0c1d2e3f4a",
        "2972395",
        title="Suspected identity theft (pass-the-ticket)",
        severity="high",
        serviceSource="microsoftDefenderForIdentity",
        detectionSource="microsoftDefenderForIdentity",
        productName="Microsoft Defender for Identity",
        category="LateralMovement",
        categories=["LateralMovement", "CredentialAccess"],
        mitreTechniques=["T1550.003"],
        firstActivityDateTime="2021-04-25T22:10:00Z",
        lastActivityDateTime="2021-05-03T01:00:00Z",
        evidence=[
            _ev("user", ["compromised"], userAccount=USER_ACCOUNT),
            _device("WS-0142"),
            _ev("ip", ["source"], ipAddress="10.1.2.3"),
        ],
    )
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972395",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/2972395?tid={TENANT}",
        "redirectIncidentId": None,
        "tenantId": TENANT,
        "displayName": "Multi-stage incident involving Initial access & Command and control "
        "on multiple endpoints reported by multiple sources",
        "createdDateTime": "2021-08-13T08:43:35.5533333Z",
        "lastUpdateDateTime": "2021-09-30T09:35:45.1133333Z",
        "assignedTo": "KaiC@contoso.onmicrosoft.com",
        "classification": "truePositive",
        "determination": "multiStagedAttack",
        "status": "active",
        "severity": "medium",
        "customTags": ["Demo"],
        "systemTags": ["Defender Experts"],
        "comments": [
            {
                "comment": "Demo incident",
                "createdByDisplayName": "DavidS@contoso.onmicrosoft.com",
                "createdDateTime": "2021-09-30T12:07:37.2756993Z",
            }
        ],
        "description": "Microsoft observed Raspberry Robin worm activity spreading through "
        "infected USB on multiple devices in your environment.",
        "summary": None,
        "lastModifiedBy": "DavidS@contoso.onmicrosoft.com",
        "resolvingComment": None,
        "priorityScore": 88,
        "alerts": [mde, mdi],
    }


def phishing_incident() -> Json:
    """Office 365 + Cloud Apps phishing incident, being handled (inProgress), unassigned."""
    mdo = _alert(
        "fa5f6ea8d1-c7a1-4f4f-b6d5-1f22c6b3e2aa",
        "2972396",
        title="Email messages containing phish URLs removed after delivery",
        severity="high",
        serviceSource="microsoftDefenderForOffice365",
        detectionSource="microsoftDefenderForOffice365",
        productName="Microsoft Defender for Office 365",
        category="InitialAccess",
        categories=["InitialAccess"],
        mitreTechniques=["T1566.002"],
        firstActivityDateTime="2021-09-29T10:00:00Z",
        lastActivityDateTime="2021-09-29T10:05:00Z",
        createdDateTime="2021-09-29T10:07:00Z",
        evidence=[
            _ev(
                "mailbox",
                ["compromised"],
                displayName="Kai Carter",
                primaryAddress="KaiC@contoso.onmicrosoft.com",
                upn="KaiC@contoso.onmicrosoft.com",
                userAccount=USER_ACCOUNT,
            ),
            _ev(
                "analyzedMessage",
                networkMessageId="4a1e7e6c-3f7d-4c52-8e8e-08d9833a1b2c",
                internetMessageId="<PH0PR11MB4839@prod.outlook.com>",
                subject="Action required: verify your mailbox",
                senderIp="192.0.2.77",
                recipientEmailAddress="KaiC@contoso.onmicrosoft.com",
                p1Sender={
                    "emailAddress": "it-support@phish.example",
                    "displayName": "IT",
                    "domainName": "phish.example",
                },
                deliveryAction="delivered",
                deliveryLocation="inbox",
                antiSpamDirection="inbound",
                urls=["https://login.phish.example/owa"],
                threats=["Phish"],
            ),
            _ev("url", url="https://login.phish.example/owa"),
            _ev(
                "mailCluster",
                clusterBy="Subject",
                clusterByValue="Action required: verify your mailbox",
                emailCount=12,
                networkMessageIds=["4a1e7e6c-3f7d-4c52-8e8e-08d9833a1b2c"],
                query="Subject:'Action required'",
            ),
        ],
    )
    mdca = _alert(
        "ca2a8d7d1e-1111-2222-3333-444455556666",
        "2972396",
        title="Suspicious inbox forwarding",
        severity="medium",
        serviceSource="microsoftDefenderForCloudApps",
        detectionSource="cloudAppSecurity",
        productName="Microsoft Defender for Cloud Apps",
        category="Exfiltration",
        categories=["Exfiltration"],
        mitreTechniques=["T1114.003"],
        firstActivityDateTime="2021-09-29T11:00:00Z",
        lastActivityDateTime="2021-09-29T12:30:00Z",
        createdDateTime="2021-09-29T12:31:00Z",
        evidence=[
            _ev("user", ["compromised"], userAccount=USER_ACCOUNT),
            _ev(
                "cloudApplication",
                appId=20893,
                displayName="Microsoft Exchange Online",
                instanceId=0,
            ),
            _ev("ip", ["source"], ipAddress="192.0.2.77", countryLetterCode="RU"),
            _ev(
                "oauthApplication",
                appId="0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                displayName="MailSync Pro",
                objectId="9f8e7d6c-5b4a-3210-fedc-ba9876543210",
                publisher="Unverified",
            ),
        ],
    )
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972396",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/2972396?tid={TENANT}",
        "redirectIncidentId": None,
        "tenantId": TENANT,
        "displayName": "Phish campaign: credential phishing emails delivered to one user",
        "createdDateTime": "2021-09-29T10:08:00Z",
        "lastUpdateDateTime": "2021-09-30T08:00:00Z",
        "assignedTo": None,
        "classification": "unknown",
        "determination": "unknown",
        "status": "active",
        "severity": "high",
        "customTags": [],
        "systemTags": [],
        "comments": [],
        "description": None,
        "summary": None,
        "lastModifiedBy": "Microsoft 365 Defender-AlertCorrelation",
        "resolvingComment": None,
        "priorityScore": None,
        "alerts": [mdo, mdca],
    }


def false_positive_incident() -> Json:
    alert = _alert(
        "da637551227677560999_-1",
        "2972397",
        title="Suspicious PowerShell command line",
        severity="low",
        status="resolved",
        classification="falsePositive",
        determination="notMalicious",
        resolvedDateTime="2021-09-20T16:00:00Z",
        mitreTechniques=["T1059.001"],
        firstActivityDateTime="2021-09-20T09:00:00Z",
        lastActivityDateTime="2021-09-20T09:01:00Z",
        evidence=[_device("BUILD-07", ["compromised"], mdeDeviceId="b" * 40)],
    )
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972397",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/2972397?tid={TENANT}",
        "redirectIncidentId": None,
        "tenantId": TENANT,
        "displayName": "Suspicious PowerShell command line on one endpoint",
        "createdDateTime": "2021-09-20T09:05:00Z",
        "lastUpdateDateTime": "2021-09-20T16:30:00Z",
        "assignedTo": "DavidS@contoso.onmicrosoft.com",
        "classification": "falsePositive",
        "determination": "notMalicious",
        "status": "resolved",
        "severity": "low",
        "customTags": ["build-server"],
        "systemTags": [],
        "comments": [
            {
                "comment": "Build script, expected.",
                "createdByDisplayName": "DavidS@contoso.onmicrosoft.com",
                "createdDateTime": "2021-09-20T15:59:00Z",
            }
        ],
        "description": None,
        "summary": None,
        "lastModifiedBy": "DavidS@contoso.onmicrosoft.com",
        "resolvingComment": "Nightly build runs this script.",
        "priorityScore": 5,
        "alerts": [alert],
    }


def benign_incident() -> Json:
    alert = _alert(
        "ip0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "2972398",
        title="Atypical travel",
        severity="informational",
        status="resolved",
        serviceSource="azureAdIdentityProtection",
        detectionSource="azureAdIdentityProtection",
        productName="Microsoft Entra ID Protection",
        classification="informationalExpectedActivity",
        determination="confirmedActivity",
        category="InitialAccess",
        categories=["InitialAccess"],
        resolvedDateTime="2021-09-25T10:00:00Z",
        firstActivityDateTime="2021-09-24T06:00:00Z",
        lastActivityDateTime="2021-09-24T06:30:00Z",
        evidence=[
            _ev("user", ["compromised"], userAccount=USER_ACCOUNT),
            _ev("kubernetesPod", name="api-7d9f", namespace={"name": "prod"}),
        ],
    )
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972398",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/2972398?tid={TENANT}",
        "redirectIncidentId": None,
        "tenantId": TENANT,
        "displayName": "Atypical travel involving one user",
        "createdDateTime": "2021-09-24T06:35:00Z",
        "lastUpdateDateTime": "2021-09-25T10:05:00Z",
        "assignedTo": "KaiC@contoso.onmicrosoft.com",
        "classification": "informationalExpectedActivity",
        "determination": "confirmedActivity",
        "status": "resolved",
        "severity": "informational",
        "customTags": [],
        "systemTags": [],
        "comments": [],
        "description": None,
        "summary": None,
        "lastModifiedBy": "KaiC@contoso.onmicrosoft.com",
        "resolvingComment": "User travelling.",
        "priorityScore": None,
        "alerts": [alert],
    }


def redirected_incident() -> Json:
    """Absorbed by 2972395 in a merge: alerts and tags moved away, comments stay."""
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972399",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/2972399?tid={TENANT}",
        "redirectIncidentId": "2972395",
        "tenantId": TENANT,
        "displayName": "Initial access incident on one endpoint",
        "createdDateTime": "2021-08-13T08:40:00Z",
        "lastUpdateDateTime": "2021-08-13T09:00:00Z",
        "assignedTo": None,
        "classification": "unknown",
        "determination": "unknown",
        "status": "redirected",
        "severity": "medium",
        "customTags": [],
        "systemTags": [],
        "comments": [
            {
                "comment": "Looking at this one",
                "createdByDisplayName": "Analyst One",
                "createdDateTime": "2021-08-13T08:50:00Z",
            }
        ],
        "description": None,
        "summary": None,
        "lastModifiedBy": "Microsoft Defender XDR - alert correlation",
        "resolvingComment": None,
        "priorityScore": None,
        "alerts": [],
    }


def all_incidents() -> dict[str, Json]:
    """Fresh copies of every sample, by name, so a test may edit them."""
    return {
        "multistage": multistage_incident(),
        "phishing": phishing_incident(),
        "false_positive": false_positive_incident(),
        "benign": benign_incident(),
        "redirected": redirected_incident(),
    }
