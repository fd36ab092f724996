"""The identifying attributes of an alert's evidence, kept in a column of the alert's own for
the queue's search (migration 0010), as ``payload.alert_summary``'s columns are.

A module of its own: it reads evidence as the log tables' columns do, which needs the models,
and the hub's read path (``payload``) must not load them (read-only commands stay quick)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from xdrsync.tables.evidence_columns import evidence_columns

#: The attributes of an alert's evidence that name what it is (as its entity card shows them,
#: ``tables.evidence_columns``), which the queue's search finds: names, ids, hashes and
#: addresses, never free text (a command line, a registry value's data, a mail's subject).
EVIDENCE_TERM_COLUMNS: Final = (
    "DeviceName",
    "DeviceId",
    "LocalIP",
    "RemoteIP",
    "RemoteUrl",
    "FileName",
    "SHA1",
    "SHA256",
    "AccountName",
    "AccountUpn",
    "AccountSid",
    "AccountObjectId",
    "NetworkMessageId",
    "RegistryKey",
    "RegistryValueName",
    "Application",
    "OAuthApplicationId",
    "CloudResource",
    "ResourceID",
    "ThreatFamily",
)
#: A value longer than this is no identifier (and is left out); the terms of one alert stop
#: at ``EVIDENCE_TERMS_CAP`` characters.
MAX_EVIDENCE_TERM: Final = 256
EVIDENCE_TERMS_CAP: Final = 8 * 1024


def evidence_terms(raw: Mapping[str, Any]) -> str | None:
    """The identifying attributes of an alert's evidence for the queue's search, one per line
    (distinct, in the evidence's order; None: none): those its entity cards show
    (``EVIDENCE_TERM_COLUMNS``), a device's host name beside its DNS name, a file's MD5, and
    a mail's senders. Kept in a column of the alert's own, as ``alert_summary``'s are."""
    items = raw.get("evidence")
    found: dict[str, None] = {}
    size = 0
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        odata_type = item.get("@odata.type")
        columns = evidence_columns(odata_type if isinstance(odata_type, str) else None, item)
        values = [columns.get(name) for name in EVIDENCE_TERM_COLUMNS]
        values += [item.get("hostName"), _nested(item, "fileDetails", "md5")]
        values += [_nested(item, "imageFile", "md5")]
        values += [_nested(item, sender, "emailAddress") for sender in ("p1Sender", "p2Sender")]
        for value in values:
            text = str(value).strip() if isinstance(value, str | int) else ""
            if not text or len(text) > MAX_EVIDENCE_TERM or text in found:
                continue
            if size + len(text) + 1 > EVIDENCE_TERMS_CAP:
                return "\n".join(found) or None
            found[text] = None
            size += len(text) + 1
    return "\n".join(found) or None


def _nested(item: Mapping[str, Any], outer: str, inner: str) -> Any:
    value = item.get(outer)
    return value.get(inner) if isinstance(value, Mapping) else None


__all__ = ["EVIDENCE_TERMS_CAP", "EVIDENCE_TERM_COLUMNS", "MAX_EVIDENCE_TERM", "evidence_terms"]
