"""The identifying attributes of an alert's evidence, kept in a column of the alert's own for
the queue's search (migration 0010), as ``payload.alert_summary``'s columns are.

A module of its own: it reads evidence as the log tables' columns do, which needs the models,
and the hub's read path (``payload``) must not load them (read-only commands stay quick)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
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
        # Only the few columns the item's type fills are read, not all twenty names of every
        # item (this function was the costliest part of a backfill's commit).
        values = [columns[name] for name in _term_names(tuple(columns))]
        values.append(item.get("hostName"))
        values += [
            nested.get(inner)
            for outer, inner in _EXTRA_NESTED
            if outer in item and isinstance(nested := item[outer], Mapping)
        ]
        for value in values:
            if isinstance(value, str):
                text = value.strip()
            elif isinstance(value, int):
                text = str(value)
            else:
                continue
            if not text or len(text) > MAX_EVIDENCE_TERM or text in found:
                continue
            if size + len(text) + 1 > EVIDENCE_TERMS_CAP:
                return "\n".join(found) or None
            found[text] = None
            size += len(text) + 1
    return "\n".join(found) or None


#: Besides the columns and a device's host name (its DNS name is ``DeviceName``): a file's
#: and a process image's MD5, and a mail's senders, in this order.
_EXTRA_NESTED: Final = (
    ("fileDetails", "md5"),
    ("imageFile", "md5"),
    ("p1Sender", "emailAddress"),
    ("p2Sender", "emailAddress"),
)


@lru_cache(maxsize=256)  # one entry per evidence type's set of columns: a few dozen
def _term_names(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The term columns among ``columns``, in ``EVIDENCE_TERM_COLUMNS``' order."""
    return tuple(name for name in EVIDENCE_TERM_COLUMNS if name in columns)


__all__ = ["EVIDENCE_TERMS_CAP", "EVIDENCE_TERM_COLUMNS", "MAX_EVIDENCE_TERM", "evidence_terms"]
