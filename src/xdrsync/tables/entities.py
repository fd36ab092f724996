"""Sentinel entity objects (SecurityAlert.Entities) built from Graph alert evidence.

Sentinel serialises an alert's entities as one JSON array of objects, each with a `$id` and a
lower-case `Type` (`host`, `account`, `ip`, `url`, `file`, `filehash`, `process`, `mailbox`,
`mailMessage`, `cloud-application`, `registry-key`, `registry-value`, `dns`, `malware`,
`azure-resource`, ...), and links related entities with `{"$ref": "<id>"}` (a file's
FileHashes, a process's ImageFile). Queries read them with
`parse_json(Entities) | mv-expand ... | where tostring(E.Type) == "host"`, so the field names
follow Sentinel's entity schema. Evidence types Sentinel has no entity for keep their Graph
properties, PascalCased, under a Type derived from the evidence name.

The builders read an item's JSON of any shape (an item whose values do not fit its type is
Graph's JSON as sent, see `UnparsedEvidence`): they never assume a property is an object,
a list or a string, and carry a value of another shape into the entity as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from xdrsync.models.evidence import evidence_kind
from xdrsync.tables.encode import compact_json, json_bytes, orjson_bytes
from xdrsync.tables.evidence_columns import json_object
from xdrsync.tables.vocab import title_case

Json = dict[str, Any]
Ref = dict[str, str]
_EMPTY: tuple[object, ...] = (None, "", [], {})
_TYPE_ONLY = frozenset({"Type"})
#: orjson refuses values nested deeper than 254 levels; an entity's JSON longer than
#: `_SHALLOW` bytes with more than `_DEPTH_MARGIN` brackets might be near that (`EntityList`).
_SHALLOW = 500
_DEPTH_MARGIN = 200


def _kebab(kind: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", kind).lower()


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


class EntityList:
    """Collects entities, giving each a `$id` and reusing it for an identical entity."""

    def __init__(self) -> None:
        self._bodies: list[Json] = []  # the entities without their `$id`, by id - 1
        self._ids: dict[bytes, str] = {}  # by the entity's JSON
        #: Whether `json` may join the entities' JSON (see there).
        self._joinable = True

    @property
    def items(self) -> list[Json]:
        """The entities, each with its `$id` first (made when asked: `json` needs them only
        when it cannot join the entities' JSON)."""
        return [{"$id": str(n), **body} for n, body in enumerate(self._bodies, 1)]

    def add(self, entity: Mapping[str, Any]) -> Ref | None:
        if all(entity.values()):  # nothing to leave out (a file hash, a URL, ...)
            body = dict(entity)
        else:
            # `v or`: a value that is true is none of the empty ones, and is kept without
            # the four comparisons (most values are strings).
            body = {k: v for k, v in entity.items() if v or v not in _EMPTY}
        if len(body) < 2 and body.keys() <= _TYPE_ONLY:
            return None
        signature = orjson_bytes(body)
        if signature is None:  # what orjson refuses, through the standard library
            signature = json_bytes(body)
            self._joinable = False
        elif len(signature) > _SHALLOW and (
            signature.count(b"[") + signature.count(b"{") > _DEPTH_MARGIN
        ):
            self._joinable = False  # perhaps too deep for orjson inside the array
        found = self._ids.get(signature)
        if found is None:
            self._bodies.append(body)
            found = self._ids[signature] = str(len(self._bodies))
        return {"$ref": found}

    def json(self) -> str:
        """`compact_json` of `items`, Sentinel's Entities text. Each entity's JSON was made
        to find duplicates: with its `$id` put first, the array is those texts joined, where
        `compact_json` wrote them all again. Joined only when orjson wrote them all and none
        is nested near its depth limit: the array is then orjson's text too. (With `add`
        copying no empty-free entity and `items` made only when asked, the Entities of the
        8,069 alerts of a 2,000-incident backfill took 0.30 CPU-s instead of 0.45.)"""
        if not self._joinable:
            return compact_json(self.items)
        # The ids are 1, 2, ... in the order the entities came (`add`).
        parts = [b'{"$id":"%d",%s' % (n, s[1:]) for n, s in enumerate(self._ids, 1)]
        return (b"[" + b",".join(parts) + b"]").decode("utf-8")


def _os_family(platform: object) -> str | None:
    text = str(platform or "")
    for prefix, family in (("windows", "Windows"), ("linux", "Linux"), ("mac", "MacOS")):
        if text.lower().startswith(prefix):
            return family
    if text.lower() in ("android", "ios"):
        return "Android" if text.lower() == "android" else "IOS"
    return text or None


def account_entity(account: Mapping[str, Any] | None) -> Json:
    a = json_object(account)
    upn = a.get("userPrincipalName")
    parts = upn.split("@", 1) if isinstance(upn, str) and upn else []
    name = a.get("accountName") or (parts[0] if parts else None)
    # Graph's userAccount has one `domainName` (reference §2.6), which holds either the
    # NetBIOS name ("CONTOSO") or the DNS name ("contoso.com"); Sentinel's account entity
    # keeps the two apart, so a dotted name is the DNS domain.
    domain = a.get("domainName")
    dotted = isinstance(domain, str) and "." in domain
    return {
        "Name": name,
        "NTDomain": None if dotted else domain,
        "DnsDomain": domain if dotted else None,
        "UPNSuffix": parts[1] if len(parts) == 2 else None,
        "UserPrincipalName": upn,
        "Sid": a.get("userSid"),
        "AadUserId": a.get("azureAdUserId"),
        "AadTenantId": a.get("tenantId"),
        "ObjectGuid": a.get("activeDirectoryObjectGuid"),
        "DisplayName": a.get("displayName"),
        "Type": "account",
    }


def _host(r: Mapping[str, Any], _: EntityList) -> Json:
    fqdn = r.get("deviceDnsName")
    host, _dot, domain = str(fqdn or "").partition(".")
    return {
        "HostName": r.get("hostName") or host or None,
        "DnsDomain": r.get("dnsDomain") or domain or None,
        "NTDomain": r.get("ntDomain"),
        "FQDN": fqdn,
        "OSFamily": _os_family(r.get("osPlatform")),
        "OSVersion": r.get("version"),
        "MdatpDeviceId": r.get("mdeDeviceId"),
        "AadDeviceId": r.get("azureAdDeviceId"),
        "RiskScore": title_case(r.get("riskScore")),
        "HealthStatus": title_case(r.get("healthStatus")),
        "OnboardingStatus": title_case(r.get("onboardingStatus")),
        "AvStatus": title_case(r.get("defenderAvStatus")),
        "LastIpAddress": r.get("lastIpAddress"),
        "LastExternalIpAddress": r.get("lastExternalIpAddress"),
        "LoggedOnUsers": [
            {"AccountName": u.get("accountName"), "DomainName": u.get("domainName")}
            for u in _list(r.get("loggedOnUsers"))
            if isinstance(u, Mapping)
        ],
        "Type": "host",
    }


def ip_entity(r: Mapping[str, Any] | None) -> Json:
    raw = json_object(r)
    location = json_object(raw.get("location"))
    return {
        "Address": raw.get("ipAddress"),
        "Location": {
            k: v
            for k, v in {
                "CountryCode": raw.get("countryLetterCode") or location.get("countryCode"),
                "CountryName": location.get("countryName"),
                "State": location.get("state"),
                "City": location.get("city"),
                "Latitude": location.get("latitude"),
                "Longitude": location.get("longitude"),
            }.items()
            if v is not None
        },
        "Type": "ip",
    }


def _file(details: Mapping[str, Any] | None, out: EntityList) -> Json:
    d = json_object(details)
    hashes = [
        out.add({"Algorithm": algorithm, "Value": value, "Type": "filehash"})
        for algorithm, field in (("SHA1", "sha1"), ("SHA256", "sha256"), ("MD5", "md5"))
        if (value := d.get(field))
    ]
    return {
        "Name": d.get("fileName"),
        "Directory": d.get("filePath"),
        "FileHashes": [h for h in hashes if h],
        "Type": "file",
    }


def _process(r: Mapping[str, Any], out: EntityList) -> Json:
    parent = {
        "ProcessId": _text(r.get("parentProcessId")),
        "CreationTimeUtc": r.get("parentProcessCreationDateTime"),
        "ImageFile": out.add(_file(r.get("parentProcessImageFile"), out)),
        "Type": "process",
    }
    account = r.get("userAccount")
    return {
        "ProcessId": _text(r.get("processId")),
        "CommandLine": r.get("processCommandLine"),
        "CreationTimeUtc": r.get("processCreationDateTime"),
        "ImageFile": out.add(_file(r.get("imageFile"), out)),
        "ParentProcess": out.add(parent),
        "Account": out.add(account_entity(account)) if account else None,
        "Type": "process",
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _registry_key(r: Mapping[str, Any]) -> Json:
    return {"Hive": r.get("registryHive"), "Key": r.get("registryKey"), "Type": "registry-key"}


def _registry_value(r: Mapping[str, Any], out: EntityList) -> Json:
    return {
        "Key": out.add(_registry_key(r)),
        "Name": r.get("registryValueName"),
        "Value": r.get("registryValue"),
        "ValueType": r.get("registryValueType"),
        "Type": "registry-value",
    }


def _mail_message(r: Mapping[str, Any], _: EntityList) -> Json:
    p1, p2 = json_object(r.get("p1Sender")), json_object(r.get("p2Sender"))
    return {
        "Recipient": r.get("recipientEmailAddress"),
        "Sender": p1.get("emailAddress") or p2.get("emailAddress"),
        "P1Sender": p1.get("emailAddress"),
        "P1SenderDisplayName": p1.get("displayName"),
        "P1SenderDomain": p1.get("domainName"),
        "P2Sender": p2.get("emailAddress"),
        "P2SenderDisplayName": p2.get("displayName"),
        "P2SenderDomain": p2.get("domainName"),
        "SenderIP": r.get("senderIp"),
        "Subject": r.get("subject"),
        "NetworkMessageId": r.get("networkMessageId"),
        "InternetMessageId": r.get("internetMessageId"),
        "ReceiveDate": r.get("receivedDateTime"),
        "DeliveryAction": title_case(r.get("deliveryAction")),
        "DeliveryLocation": title_case(r.get("deliveryLocation")),
        "AntispamDirection": title_case(r.get("antiSpamDirection")),
        "Language": r.get("language"),
        "Threats": r.get("threats"),
        "ThreatDetectionMethods": r.get("threatDetectionMethods"),
        "Urls": r.get("urls"),
        "Type": "mailMessage",
    }


def _dns(r: Mapping[str, Any], out: EntityList) -> Json:
    return {
        "DomainName": r.get("domainName"),
        "IpAddresses": [
            ref
            for ip in _list(r.get("ipAddresses"))
            if isinstance(ip, Mapping) and (ref := out.add(ip_entity(ip)))
        ],
        "DnsServerIp": out.add(ip_entity(r.get("dnsServerIp"))) if r.get("dnsServerIp") else None,
        "HostIpAddress": (
            out.add(ip_entity(r.get("hostIpAddress"))) if r.get("hostIpAddress") else None
        ),
        "Type": "dns",
    }


def _subscription(resource_id: object) -> str | None:
    match = re.search(r"/subscriptions/([^/]+)", str(resource_id or ""), re.IGNORECASE)
    return match.group(1) if match else None


def _simple(
    build: Callable[[Mapping[str, Any]], Json],
) -> Callable[[Mapping[str, Any], EntityList], Json]:
    return lambda raw, _out: build(raw)


_BUILDERS: dict[str, Callable[[Mapping[str, Any], EntityList], Json]] = {
    "device": _host,
    "user": _simple(lambda r: account_entity(r.get("userAccount"))),
    "ip": _simple(ip_entity),
    "url": _simple(lambda r: {"Url": r.get("url"), "Type": "url"}),
    "file": lambda r, out: _file(r.get("fileDetails"), out),
    "fileHash": _simple(
        lambda r: {
            "Algorithm": str(r.get("algorithm") or "").upper() or None,
            "Value": r.get("value"),
            "Type": "filehash",
        }
    ),
    "process": _process,
    "mailbox": _simple(
        lambda r: {
            "MailboxPrimaryAddress": r.get("primaryAddress"),
            "DisplayName": r.get("displayName"),
            "Upn": r.get("upn"),
            "AadId": json_object(r.get("userAccount")).get("azureAdUserId"),
            "Type": "mailbox",
        }
    ),
    "analyzedMessage": _mail_message,
    "mailCluster": _simple(
        lambda r: {
            "NetworkMessageIds": r.get("networkMessageIds"),
            "MailCount": r.get("emailCount"),
            "Query": r.get("query"),
            "ClusterBy": r.get("clusterBy"),
            "ClusterByValue": r.get("clusterByValue"),
            "Type": "mailCluster",
        }
    ),
    "cloudApplication": _simple(
        lambda r: {
            "AppId": r.get("appId"),
            "Name": r.get("displayName"),
            "InstanceId": r.get("instanceId"),
            "InstanceName": r.get("instanceName"),
            "SaasId": r.get("saasAppId"),
            "Type": "cloud-application",
        }
    ),
    "oauthApplication": _simple(
        lambda r: {
            "OAuthAppId": r.get("appId"),
            "OAuthObjectId": r.get("objectId"),
            "Name": r.get("displayName"),
            "Publisher": r.get("publisher"),
            "Type": "oauth-application",
        }
    ),
    "registryKey": _simple(_registry_key),
    "registryValue": _registry_value,
    "securityGroup": _simple(
        lambda r: {
            "DistinguishedName": r.get("distinguishedName"),
            "SID": r.get("sid"),
            "ObjectGuid": r.get("activeDirectoryObjectGuid"),
            "FriendlyName": r.get("friendlyName") or r.get("displayName"),
            "Type": "security-group",
        }
    ),
    "dns": _dns,
    "malware": _simple(
        lambda r: {"Name": r.get("name"), "Category": r.get("category"), "Type": "malware"}
    ),
    "azureResource": _simple(
        lambda r: {
            "ResourceId": r.get("resourceId"),
            "SubscriptionId": _subscription(r.get("resourceId")),
            "ResourceName": r.get("resourceName"),
            "ResourceType": r.get("resourceType"),
            "Type": "azure-resource",
        }
    ),
    "cloudLogonSession": lambda r, out: {
        "SessionId": r.get("sessionId"),
        "Account": out.add(account_entity(r.get("account"))) if r.get("account") else None,
        "UserAgent": r.get("userAgent"),
        "StartTimeUtc": r.get("startUtcDateTime"),
        "Browser": r.get("browser"),
        "OperatingSystem": r.get("operatingSystem"),
        "DeviceName": r.get("deviceName"),
        "Type": "cloud-logon-session",
    },
}

#: Base-type properties of every evidence item: about the alert's judgement, not the entity.
_BASE_FIELDS = frozenset(
    {
        "@odata.type",
        "createdDateTime",
        "verdict",
        "remediationStatus",
        "remediationStatusDetails",
        "roles",
        "detailedRoles",
        "tags",
        # Sentinel's own keys: an entity's `$id` is the list's to give, and an object with a
        # `$ref` reads as a link to another entity. Graph's properties never take these
        # names; one that did would cost the entity its identity (AdditionalFields keeps it).
        "$id",
        "$ref",
    }
)


def _generic(kind: str, raw: Mapping[str, Any]) -> Json:
    body = {k[:1].upper() + k[1:]: v for k, v in raw.items() if k not in _BASE_FIELDS}
    return {**body, "Type": _kebab(kind)}


def entity_for(kind: str, raw: Mapping[str, Any], out: EntityList) -> Ref | None:
    """Add the entity (and the entities it refers to) for one evidence item."""
    builder = _BUILDERS.get(kind)
    return out.add(builder(raw, out) if builder else _generic(kind, raw))


#: Evidence items with their kinds (`evidence_kind`), as the readers below take them.
KindedEvidence = Sequence[tuple[str, Mapping[str, Any]]]


def kinded(evidence: Iterable[tuple[str | None, Mapping[str, Any]]]) -> KindedEvidence:
    """(kind, raw Graph JSON) pairs for (odata type, raw Graph JSON) pairs."""
    return [(evidence_kind(odata_type), raw) for odata_type, raw in evidence]


def entity_list(evidence: KindedEvidence) -> EntityList:
    """Sentinel's entities of (kind, raw Graph JSON) evidence pairs (`EntityList.items`), and
    their text (`EntityList.json`)."""
    out = EntityList()
    for kind, raw in evidence:
        entity_for(kind, raw, out)
    return out


def main_entity(evidence: KindedEvidence) -> str | None:
    """The alert's main entity as Sentinel names it (CompromisedEntity): a device, else a
    user, else a mailbox."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for kind, raw in evidence:
        by_kind.setdefault(kind, []).append(raw)
    for raw in by_kind.get("device", []):
        if name := _first_text(raw.get("deviceDnsName"), raw.get("hostName")):
            return name
    for raw in by_kind.get("user", []):
        account = json_object(raw.get("userAccount"))
        if name := _first_text(account.get("userPrincipalName"), account.get("accountName")):
            return name
    for raw in by_kind.get("mailbox", []):
        if name := _first_text(raw.get("primaryAddress")):
            return name
    return None


def _first_text(*values: object) -> str | None:
    return next((v for v in values if v and isinstance(v, str)), None)


__all__ = [
    "EntityList",
    "KindedEvidence",
    "account_entity",
    "entity_for",
    "entity_list",
    "ip_entity",
    "kinded",
    "main_entity",
]
