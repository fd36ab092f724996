"""Per-evidence columns of the AlertEvidence table: entity type, role and the type's key fields.

Names and meanings follow Defender's advanced hunting AlertEvidence table, which Sentinel
receives under the same name: EntityType values such as `Machine`, `User`, `Mailbox`,
`MailMessage`, `Ip`, `Url`, `File`, `Process`, `RegistryKey`, `RegistryValue`,
`CloudApplication`, `OAuthApplication`. Graph evidence types advanced hunting has no name for
are PascalCased from the evidence name (`kubernetesPodEvidence` -> `KubernetesPod`).

Every reader here takes the item's JSON as it comes, of any shape: an item of a type the
models do not know, or one whose values do not fit its type (`UnparsedEvidence`), is Graph's
JSON as sent. A column takes only a value of its own type; the rest stays in AdditionalFields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from types import MappingProxyType
from typing import Any

from xdrsync.models.evidence import evidence_kind
from xdrsync.tables.schemas import ALERT_EVIDENCE, table_schema

Row = dict[str, Any]

ENTITY_TYPES: dict[str, str] = {
    "device": "Machine",
    "user": "User",
    "mailbox": "Mailbox",
    "analyzedMessage": "MailMessage",
    "mailCluster": "MailCluster",
    "submissionMail": "SubmissionMail",
    "ip": "Ip",
    "url": "Url",
    "file": "File",
    "fileHash": "File",
    "process": "Process",
    "registryKey": "RegistryKey",
    "registryValue": "RegistryValue",
    "cloudApplication": "CloudApplication",
    "oauthApplication": "OAuthApplication",
    "securityGroup": "SecurityGroup",
    "dns": "DnsResolution",
    "malware": "Malware",
    "azureResource": "AzureResource",
    "amazonResource": "AmazonResource",
    "googleCloudResource": "GoogleCloudResource",
    "cloudLogonSession": "CloudLogonSession",
    "servicePrincipal": "ServicePrincipal",
    "networkConnection": "NetworkConnection",
}

#: Graph roles that mean the entity was hit, as opposed to merely involved (advanced hunting's
#: EvidenceRole is `Impacted` or `Related`). UNVERIFIED: Microsoft does not publish the rule.
_IMPACTED_ROLES = frozenset({"compromised", "attacked", "policyviolator"})


def kind_entity_type(kind: str) -> str:
    """`entity_type` of an item of this kind (`evidence_kind`)."""
    return ENTITY_TYPES.get(kind) or kind[:1].upper() + kind[1:]


def texts(value: object) -> list[str]:
    """The non-empty strings of a JSON list (anything else: none), e.g. an item's `roles`."""
    return [v for v in value if v and isinstance(v, str)] if isinstance(value, list) else []


def role_and_direction(roles: object, detailed_roles: object) -> tuple[str, str | None]:
    """AlertEvidence's EvidenceRole and EvidenceDirection for an item's `roles` and
    `detailedRoles` as Graph sent them (of any shape: see `texts`), its roles lower-cased once
    for both."""
    if not roles and not detailed_roles:  # most items
        return "Related", None
    lowered = {r.lower() for r in texts(roles)} if roles else _NO_ROLES
    return _role(lowered, texts(detailed_roles) if detailed_roles else []), _direction(lowered)


_NO_ROLES: frozenset[str] = frozenset()


def _role(lowered: Set[str], detailed_roles: list[str]) -> str:
    if lowered & _IMPACTED_ROLES or any("main" in d.lower() for d in detailed_roles):
        return "Impacted"
    return "Related"


def _direction(lowered: Set[str]) -> str | None:
    if "source" in lowered or "attacker" in lowered:
        return "Source"
    if "destination" in lowered:
        return "Destination"
    return None


def json_object(value: object) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: evidence of a type the models do
    not know, or whose values do not fit its type, comes as Graph sent it, of any shape."""
    return value if type(value) is dict or isinstance(value, Mapping) else _NO_OBJECT


_NO_OBJECT: Mapping[str, Any] = MappingProxyType({})


def _account(account: Mapping[str, Any] | None) -> Row:
    a = json_object(account)
    return {
        "AccountName": a.get("accountName"),
        "AccountDomain": a.get("domainName"),
        "AccountSid": a.get("userSid"),
        "AccountObjectId": a.get("azureAdUserId"),
        "AccountUpn": a.get("userPrincipalName"),
    }


def _file(details: Mapping[str, Any] | None) -> Row:
    d = json_object(details)
    size = d.get("fileSize")
    return {
        "FileName": d.get("fileName"),
        "FolderPath": d.get("filePath"),
        "SHA1": d.get("sha1"),
        "SHA256": d.get("sha256"),
        "FileSize": size if type(size) is int and -(2**63) <= size < 2**63 else None,
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _registry_key(r: Mapping[str, Any]) -> str | None:
    hive, key = _text(r.get("registryHive")), _text(r.get("registryKey"))
    if hive and key and not key.upper().startswith(hive.upper()):
        return f"{hive}\\{key}"
    return key or hive


def _device(r: Mapping[str, Any]) -> Row:
    return {
        "DeviceId": r.get("mdeDeviceId"),
        "DeviceName": r.get("deviceDnsName") or r.get("hostName"),
        "LocalIP": r.get("lastIpAddress"),
    }


def _process(r: Mapping[str, Any]) -> Row:
    return {
        **_file(r.get("imageFile")),
        **_account(r.get("userAccount")),
        "ProcessCommandLine": r.get("processCommandLine"),
        "DeviceId": r.get("mdeDeviceId"),
    }


def _file_hash(r: Mapping[str, Any]) -> Row:
    algorithm = str(r.get("algorithm") or "").lower()
    return (
        {"SHA1" if algorithm == "sha1" else "SHA256": r.get("value")}
        if algorithm
        in (
            "sha1",
            "sha256",
        )
        else {}
    )


def _mail_message(r: Mapping[str, Any]) -> Row:
    return {
        "NetworkMessageId": r.get("networkMessageId"),
        "EmailSubject": r.get("subject"),
        "AccountUpn": r.get("recipientEmailAddress"),
        "RemoteIP": r.get("senderIp"),
    }


def _cloud_resource(platform: str, id_field: str) -> Callable[[Mapping[str, Any]], Row]:
    def build(r: Mapping[str, Any]) -> Row:
        resource_id = r.get(id_field)
        subscription = None
        azure_id = resource_id if platform == "Azure" and isinstance(resource_id, str) else ""
        if "/subscriptions/" in azure_id.lower():
            parts = azure_id.split("/")
            lowered = [p.lower() for p in parts]
            subscription = parts[lowered.index("subscriptions") + 1]
        return {
            "CloudPlatform": platform,
            "CloudResource": r.get("resourceName"),
            "ResourceType": r.get("resourceType"),
            "ResourceID": resource_id,
            "SubscriptionId": subscription or r.get("amazonAccountId") or r.get("projectId"),
        }

    return build


def _nested(r: Mapping[str, Any], outer: str, inner: str) -> Any:
    found = r.get(outer)
    return found.get(inner) if isinstance(found, Mapping) else None


def _app_id(value: object) -> int | None:
    # AlertEvidence.ApplicationId is int (Defender for Cloud Apps' catalogue id).
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if -(2**31) <= number < 2**31 else None


_COLUMNS: dict[str, Callable[[Mapping[str, Any]], Row]] = {
    "device": _device,
    "user": lambda r: _account(r.get("userAccount")),
    "mailbox": lambda r: {
        **_account(r.get("userAccount")),
        "AccountUpn": r.get("upn") or r.get("primaryAddress"),
    },
    "analyzedMessage": _mail_message,
    "ip": lambda r: {"RemoteIP": r.get("ipAddress")},
    "url": lambda r: {"RemoteUrl": r.get("url")},
    "file": lambda r: {**_file(r.get("fileDetails")), "DeviceId": r.get("mdeDeviceId")},
    "fileHash": _file_hash,
    "process": _process,
    "registryKey": lambda r: {"RegistryKey": _registry_key(r)},
    "registryValue": lambda r: {
        "RegistryKey": _registry_key(r),
        "RegistryValueName": r.get("registryValueName"),
        "RegistryValueData": r.get("registryValue"),
        "DeviceId": r.get("mdeDeviceId"),
    },
    "cloudApplication": lambda r: {
        "ApplicationId": _app_id(r.get("appId")),
        "Application": r.get("displayName"),
    },
    "oauthApplication": lambda r: {
        "OAuthApplicationId": r.get("appId"),
        "Application": r.get("displayName"),
    },
    "servicePrincipal": lambda r: {
        "OAuthApplicationId": r.get("appId"),
        "Application": r.get("servicePrincipalName"),
    },
    "securityGroup": lambda r: {
        "AccountSid": r.get("sid"),
        "AccountObjectId": r.get("securityGroupId"),
        "AccountName": r.get("displayName") or r.get("friendlyName"),
    },
    "malware": lambda r: {"ThreatFamily": r.get("name")},
    "cloudLogonSession": lambda r: {
        **_account(r.get("account")),
        "DeviceName": r.get("deviceName"),
    },
    "networkConnection": lambda r: {
        "RemoteIP": _nested(r, "destinationAddress", "ipAddress"),
        "LocalIP": _nested(r, "sourceAddress", "ipAddress"),
    },
    "dns": lambda r: {"RemoteUrl": r.get("domainName")},
    "azureResource": _cloud_resource("Azure", "resourceId"),
    "amazonResource": _cloud_resource("AWS", "amazonResourceId"),
    "googleCloudResource": _cloud_resource("GCP", "fullResourceName"),
}


#: The AlertEvidence columns `_COLUMNS` fills, with the Python type each holds.
_HOLDS: dict[str, type] = {
    c.name: str if c.kql_type == "string" else int
    for c in table_schema(ALERT_EVIDENCE).columns
    if c.kql_type in ("string", "int", "long")
}


def evidence_columns(odata_type: str | None, raw: Mapping[str, Any]) -> Row:
    """The entity-specific AlertEvidence columns for one evidence item (others stay null):
    those whose value has the column's type (a property Graph sent in another shape is in
    AdditionalFields only)."""
    return kind_columns(evidence_kind(odata_type), raw)


def kind_columns(kind: str, raw: Mapping[str, Any]) -> Row:
    """`evidence_columns` of an item of this kind (`evidence_kind`)."""
    build = _COLUMNS.get(kind)
    if build is None:
        return {}
    return {k: v for k, v in build(raw).items() if type(v) is _HOLDS[k]}


__all__ = [
    "ENTITY_TYPES",
    "evidence_columns",
    "json_object",
    "kind_columns",
    "kind_entity_type",
    "role_and_direction",
    "texts",
]
