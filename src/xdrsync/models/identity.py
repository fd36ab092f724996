"""EntityKey and the normalisers that make an entity's identity stable across alerts."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Final, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from xdrsync.models.wire import format_datetime


class EntityKey(NamedTuple):
    """A stable, hashable identity for the thing an evidence item describes.

    ``kind`` names the entity type (`device`, `user`, `file`, ...); ``value`` is canonical
    for it (case-folded where the identifier is case-insensitive), so the same entity seen
    in different alerts, spelt differently, gets the same key.
    """

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


#: Every ``EntityKey.kind`` the evidence models make (their ``entity_key``): what the
#: console's entity filters take, spelled so (the hub compares kinds exactly).
#: tests/console/test_api_refusals.py holds it to the models' calls.
ENTITY_KINDS: Final = frozenset(
    {
        "activeDirectoryDomain",
        "aiAgent",
        "amazonResource",
        "analyzedMessage",
        "azureResource",
        "blob",
        "blobContainer",
        "cloudApplication",
        "cloudLogonRequest",
        "cloudLogonSession",
        "container",
        "containerImage",
        "containerRegistry",
        "device",
        "dns",
        "file",
        "gitHubOrganization",
        "gitHubRepo",
        "gitHubUser",
        "googleCloudResource",
        "hostLogonSession",
        "ioTDevice",
        "ip",
        "kubernetesCluster",
        "kubernetesController",
        "kubernetesNamespace",
        "kubernetesPod",
        "kubernetesSecret",
        "kubernetesService",
        "kubernetesServiceAccount",
        "mailCluster",
        "mailbox",
        "mailboxConfiguration",
        "malware",
        "networkConnection",
        "nic",
        "oauthApplication",
        "process",
        "registryKey",
        "registryValue",
        "sasToken",
        "securityGroup",
        "servicePrincipal",
        "submissionMail",
        "teamsMessage",
        "url",
        "user",
    }
)


def text(value: str | None) -> str | None:
    """Stripped text, None when absent or blank."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def folded(value: str | None) -> str | None:
    """Case-insensitive identifiers (GUIDs, UPNs, email addresses, registry paths)."""
    cleaned = text(value)
    return cleaned.lower() if cleaned else None


def norm_guid(value: str | None) -> str | None:
    cleaned = folded(value)
    return cleaned.strip("{}") if cleaned else None


def norm_sid(value: str | None) -> str | None:
    cleaned = text(value)
    return cleaned.upper() if cleaned else None


def norm_dns(value: str | None) -> str | None:
    cleaned = folded(value)
    return cleaned.rstrip(".") or None if cleaned else None


def norm_ip(value: str | None) -> str | None:
    """Canonical IP text (`::ffff:0:1` style compression); unparseable values are folded."""
    cleaned = text(value)
    if cleaned is None:
        return None
    try:
        return ipaddress.ip_address(cleaned).compressed
    except ValueError:
        return cleaned.lower()


def norm_url(value: str | None) -> str | None:
    """Scheme and host are case-insensitive; path and query are kept as they are."""
    cleaned = text(value)
    if cleaned is None:
        return None
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return cleaned
    if not parts.scheme and not parts.netloc:
        return cleaned
    return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()))


def norm_mac(value: str | None) -> str | None:
    cleaned = folded(value)
    return cleaned.replace("-", ":") if cleaned else None


def instant(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def join(*parts: str | None, sep: str = "/") -> str | None:
    """All parts joined, or None when any is missing (a partial key would merge strangers)."""
    present = [part for part in parts if part]
    return sep.join(present) if len(present) == len(parts) else None


def make_key(kind: str, value: str | None) -> EntityKey | None:
    return EntityKey(kind, value) if value else None


__all__ = [
    "ENTITY_KINDS",
    "EntityKey",
    "folded",
    "instant",
    "join",
    "make_key",
    "norm_dns",
    "norm_guid",
    "norm_ip",
    "norm_mac",
    "norm_sid",
    "norm_url",
    "text",
]
