"""Defender XDR incident → Microsoft Sentinel incident: names, properties, merge, difference.

Pure functions. Values are mapped the way Microsoft's own connector maps them
(microsoft-apis.md §1.3, through the log tables' vocabulary in ``xdrsync.tables.vocab``), and
every text respects Sentinel's limits (§3.6) with a visible cut. ARM keeps
``providerIncidentId``/``providerName``/``additionalData`` read-only, so the way back to
Defender lives in the description's trailer and in a ``defender-incident:<id>`` label.

xdrsync *manages* the properties in ``MANAGED`` and the labels it derives from Defender; a PUT
keeps everything else Sentinel holds (analysts' labels, unknown properties). ``differs`` tells
whether Sentinel already shows what Defender says, so an unchanged incident costs no PUT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from xdrsync.destinations.sentinel.text import MAX_DESCRIPTION, fit, head, sendable, utf16_len
from xdrsync.tables.alert_rows import iso, product, severity
from xdrsync.tables.sentinel import incident_name as _table_incident_name
from xdrsync.tables.vocab import (
    CLASSIFICATION,
    CLOSED,
    INCIDENT_STATUS,
    PRODUCTS,
    UNDETERMINED,
    key,
)

if TYPE_CHECKING:
    from xdrsync.models import Incident

Properties = dict[str, Any]

DEFENDER_PORTAL: Final = "https://security.microsoft.com"
INCIDENT_LABEL_PREFIX: Final = "defender-incident:"
REDIRECTED_LABEL: Final = "Redirected"  # Sentinel tags the absorbed incident of a merge (§1.6)
DESCRIPTION_CUT: Final = " … [cut: the full description is in Defender]"

#: The properties xdrsync sets on every PUT (None: cleared); labels are merged separately.
MANAGED: Final[tuple[str, ...]] = (
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "classificationReason",
    "classificationComment",
    "owner",
    "firstActivityTimeUtc",
    "lastActivityTimeUtc",
)
#: Properties Sentinel sets itself (§3.2): never sent back in a PUT body.
READ_ONLY: Final = frozenset(
    {
        "createdTimeUtc",
        "lastModifiedTimeUtc",
        "incidentNumber",
        "incidentUrl",
        "providerName",
        "providerIncidentId",
        "relatedAnalyticRuleIds",
        "additionalData",
    }
)
#: Kept in the hub's copy of an incident only, never sent: the labels xdrsync derived from
#: Defender when it last wrote the incident (the only labels it may take away later).
OWN_LABELS: Final = "xdrsync:ownLabels"
_TIMES: Final = frozenset({"firstActivityTimeUtc", "lastActivityTimeUtc"})
_UPN: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SHOWN_ID: Final = 100  # characters of a Defender id shown in a trailer or label
_SHOWN_URL: Final = 2_000
#: Product labels of the log tables' vocabulary: withdrawn when no alert names them any more.
_PRODUCT_LABELS: Final = frozenset(p.product_name for p in PRODUCTS.values())


def incident_name(tenant_id: str, incident_id: str) -> str:
    """The Sentinel incident's name: a uuid5 of the tenant and the Defender id, so a retry
    writes the same incident and two tenants' incident 42 never meet. The same name the
    workspace's ``SecurityIncident.IncidentName`` shows."""
    return _table_incident_name(tenant_id, incident_id)


def defender_url(incident: Incident, tenant_id: str) -> str:
    """The incident's page in the Defender portal (Graph's ``incidentWebUrl`` when given)."""
    if incident.incident_web_url:
        return incident.incident_web_url
    return f"{DEFENDER_PORTAL}/incidents/{quote(incident.id or '', safe='')}?tid={tenant_id}"


@dataclass(frozen=True)
class Desired:
    """What Defender says the Sentinel incident should show.

    ``properties`` holds every ``MANAGED`` property (None: not set); ``labels`` the labels
    xdrsync derives from Defender; ``retired_labels`` (case-folded) labels it derived once and
    no longer does (a custom tag removed in Defender), which a merge takes away.
    """

    name: str
    properties: Mapping[str, Any]
    labels: tuple[str, ...]
    retired_labels: frozenset[str] = frozenset()


# -- single values --------------------------------------------------------------------------


def sentinel_status(incident: Incident) -> str:
    """active → New, inProgress/awaitingAction → Active, resolved/redirected → Closed."""
    if incident.is_redirected:
        return CLOSED
    return INCIDENT_STATUS.get(key(incident.status), "New")


def sentinel_classification(incident: Incident) -> tuple[str, str | None]:
    """(classification, classificationReason) per §1.3's table; unknown or unset is
    Undetermined (so a Closed incident always carries one). A merged incident is closed as
    Undetermined whatever Defender said."""
    if incident.is_redirected:
        return UNDETERMINED, None
    return CLASSIFICATION.get(key(incident.classification), (UNDETERMINED, None))


def sentinel_owner(assigned_to: str | None) -> Properties | None:
    """Defender's free-text assignee as Sentinel's owner object; None when unassigned."""
    text = (assigned_to or "").strip()
    if not text:
        return None
    if _UPN.match(text):
        return {"userPrincipalName": text, "assignedTo": text, "ownerType": "User"}
    return {"assignedTo": text, "ownerType": "Unknown"}


def incident_labels(incident: Incident, tenant_name: str) -> tuple[str, ...]:
    """Tenant name, the alerts' product names (as the log tables name them), Defender's custom
    tags, ``defender-incident:<id>``, and ``Redirected`` for a merged incident; each once."""
    names: list[str] = [tenant_name]
    names += [product(alert).product_name for alert in incident.alerts]
    names += list(incident.custom_tags)
    names.append(f"{INCIDENT_LABEL_PREFIX}{(incident.id or '')[:_SHOWN_ID]}")
    if incident.is_redirected:
        names.append(REDIRECTED_LABEL)
    return _unique(sendable(names))


def description(incident: Incident, *, tenant_id: str, tenant_name: str) -> str:
    """Defender's description, then a trailer naming the Defender incident, its tenant and
    its portal URL; at most 5,000 characters, Defender's text cut visibly, the trailer whole."""
    url = defender_url(incident, tenant_id)[:_SHOWN_URL]
    shown_id = (incident.id or "?")[:_SHOWN_ID]
    trailer = f"Defender XDR incident {shown_id} (tenant {tenant_name}): {url}"
    text = (incident.description or "").strip()
    if not text:
        return head(trailer, MAX_DESCRIPTION)
    separator = "\n\n— "
    room = MAX_DESCRIPTION - utf16_len(separator) - utf16_len(trailer)
    return fit(text, room, DESCRIPTION_CUT) + separator + trailer


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        text = (value or "").strip()
        if text:
            seen.setdefault(text.casefold(), text)
    return tuple(seen.values())


def _first(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _last(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# -- the whole incident ---------------------------------------------------------------------


def desired_incident(
    incident: Incident,
    *,
    tenant_id: str,
    tenant_name: str,
    earlier_tags: Iterable[str] = (),
    written_labels: Iterable[str] | None = None,
) -> Desired:
    """The Sentinel incident for this Defender incident (with its current alerts).

    ``tenant_id`` is the configured tenant the hub keeps it under (it names the incident);
    ``earlier_tags`` are custom tags of earlier versions, withdrawn when no longer present;
    not from a merged-away incident, whose tags Defender moved to the survivor rather than
    removed (its Sentinel twin keeps them, analysts' labels that became tags among them).
    ``written_labels`` (``own_labels`` of the hub's copy) are the labels xdrsync derived at its
    last write: only those are withdrawn, so an analyst's label that happens to share a name
    with a tag Defender dropped before stays. None (a copy from before xdrsync kept them):
    any earlier tag or product label may be withdrawn.
    """
    alerts = incident.alerts
    classification, reason = sentinel_classification(incident)
    title = (incident.display_name or "").strip() or f"Defender XDR incident {incident.id}"
    properties: Properties = {
        "title": title,
        "description": description(incident, tenant_id=tenant_id, tenant_name=tenant_name),
        "severity": severity(incident.severity),
        "status": sentinel_status(incident),
        "classification": classification,
        "classificationReason": reason,
        "classificationComment": (
            None if incident.is_redirected else (incident.resolving_comment or None)
        ),
        "owner": sentinel_owner(incident.assigned_to),
        "firstActivityTimeUtc": iso(_first(a.first_activity_date_time for a in alerts)),
        "lastActivityTimeUtc": iso(_last(a.last_activity_date_time for a in alerts)),
    }
    labels = incident_labels(incident, tenant_name)
    wanted = {label.casefold() for label in labels}
    earlier = () if incident.is_redirected else earlier_tags
    retired = {sendable(t).casefold() for t in earlier} | {p.casefold() for p in _PRODUCT_LABELS}
    if written_labels is not None:
        retired &= {label.casefold() for label in written_labels}
    return Desired(
        name=incident_name(tenant_id, incident.id or ""),
        properties=sendable(properties),
        labels=labels,
        retired_labels=frozenset(retired - wanted),
    )


#: The Sentinel properties that show each two-way field (``twoway.fields``' names).
SHOWN_AS: Final[dict[str, tuple[str, ...]]] = {
    "status": ("status",),
    "assignedTo": ("owner",),
    "classification": ("classification", "classificationReason"),
}


@dataclass(frozen=True)
class Held:
    """What analysts changed on the Sentinel twin that is still on its way to Defender (an
    edit of theirs queued, or confirmed by a version the hub has not read yet): the two-way
    fields (``SHOWN_AS``' keys), and the labels added and taken away (case-folded)."""

    fields: frozenset[str] = frozenset()
    labels_added: frozenset[str] = frozenset()
    labels_removed: frozenset[str] = frozenset()


def hold(desired: Desired, current: Mapping[str, Any] | None, held: Held) -> Desired:
    """``desired`` with what Sentinel holds (``current``) in the fields ``held`` names.

    Until Defender's version with an analyst's edit comes back, the hub holds Defender's
    older value: written over the twin, it would turn Active back into New, then Active
    again once the edit lands, and fire Sentinel's automation rules twice. Should the edit
    not win (refused, or Defender's value wins the conflict), settling it states the
    incident again (``hub.outbox``), and the next delivery writes Defender's value."""
    if current is None or held == Held():
        return desired
    properties = dict(desired.properties)
    for name in held.fields:
        for shown in SHOWN_AS.get(name, ()):
            properties[shown] = current.get(shown)
    labels = tuple(label for label in desired.labels if label.casefold() not in held.labels_removed)
    return replace(
        desired,
        properties=properties,
        labels=labels,
        retired_labels=desired.retired_labels - held.labels_added,
    )


def merge(current: Mapping[str, Any] | None, desired: Desired) -> Properties:
    """The PUT body's ``properties``: what Sentinel holds that xdrsync does not manage
    (analysts' labels, unknown properties) kept, the managed properties set (or cleared),
    Defender's labels added and the retired ones taken away. Where Defender has nothing finer
    to say, an analyst's closing reason and note stay (``_closing_kept``), and so does the
    owner as Sentinel resolved it (``_owner_kept``)."""
    body: Properties = {
        name: value
        for name, value in (current or {}).items()
        if name not in READ_ONLY and name not in MANAGED and name not in ("labels", OWN_LABELS)
    }
    body.update({name: value for name, value in desired.properties.items() if value is not None})
    body.update(_closing_kept(current or {}, desired))
    body.update(_owner_kept(current or {}, desired))
    body["labels"] = _merge_labels((current or {}).get("labels"), desired)
    return body


def own_labels(copy: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The labels xdrsync derived at its last write, as the hub's copy keeps them; None when
    the copy does not say (no copy, or one saved before xdrsync kept them)."""
    found = (copy or {}).get(OWN_LABELS)
    if not isinstance(found, list):
        return None
    return tuple(label for label in found if isinstance(label, str))


def with_own_labels(properties: Mapping[str, Any], labels: Iterable[str] | None) -> dict[str, Any]:
    """``properties`` to keep in the hub's copy, with the labels xdrsync derived (if known)."""
    kept = {name: value for name, value in properties.items() if name != OWN_LABELS}
    if labels is not None:
        kept[OWN_LABELS] = list(labels)
    return kept


def _closing_kept(current: Mapping[str, Any], desired: Desired) -> Properties:
    """What Sentinel's analysts said when closing that Defender cannot say back.

    Defender has no classification reasons: the mapping's reason is only the connector's
    default for the classification, so when Sentinel already shows that classification its
    own reason stays (an analyst's FalsePositive / IncorrectAlertLogic, sent to Defender as
    falsePositive, is not turned into InaccurateData by the echo). Sentinel's classification
    comment stays unless Defender has a resolving comment of its own (an analyst's closing
    note reaches Defender as an ordinary comment, never as the resolving one)."""
    kept: Properties = {}
    shown, wanted = current.get("classification"), desired.properties.get("classification")
    reason = current.get("classificationReason")
    if (
        isinstance(shown, str)
        and isinstance(wanted, str)
        and shown.casefold() == wanted.casefold()
        and isinstance(reason, str)
        and reason
    ):
        kept["classificationReason"] = reason
    note = current.get("classificationComment")
    if (
        desired.properties.get("classificationComment") is None
        and isinstance(note, str)
        and note.strip()
    ):
        kept["classificationComment"] = note
    return kept


def _owner_kept(current: Mapping[str, Any], desired: Desired) -> Properties:
    """Sentinel's owner while it names whom Defender names: the object id, e-mail and name
    Sentinel holds (what "Assigned to me" and the owner column go by, an analyst's own
    assignment among them) are not put back as the bare UPN Defender knows."""
    shown, wanted = current.get("owner"), desired.properties.get("owner")
    if wanted is None or not isinstance(shown, Mapping):
        return {}
    same = _owner_key(shown) is not None and _owner_key(shown) == _owner_key(wanted)
    return {"owner": dict(shown)} if same else {}


def _merge_labels(current: object, desired: Desired) -> list[Properties]:
    kept: list[Properties] = []
    present: set[str] = set()
    wanted = {label.casefold() for label in desired.labels}
    for label in current if isinstance(current, list) else []:
        name = label.get("labelName") if isinstance(label, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            continue
        folded = name.casefold()
        if folded in present or (folded in desired.retired_labels and folded not in wanted):
            continue
        present.add(folded)
        kept.append({k: v for k, v in label.items() if k in ("labelName", "labelType")})
    for name in desired.labels:
        if name.casefold() not in present:
            present.add(name.casefold())
            kept.append({"labelName": name, "labelType": "User"})
    return kept


def differs(current: Mapping[str, Any] | None, desired: Desired) -> bool:
    """Whether Sentinel's incident differs from what Defender says, in anything xdrsync
    manages. Compared as Sentinel normalises values: times as instants, the owner by UPN,
    labels by name, an empty text as no text."""
    if current is None:
        return True
    merged = merge(current, desired)
    for name in MANAGED:
        if _comparable(name, current.get(name)) != _comparable(name, merged.get(name)):
            return True
    return _label_names(current.get("labels")) != _label_names(merged.get("labels"))


def shown_alike(name: str, one: object, other: object) -> bool:
    """Whether two values of the managed property ``name`` show the same in Sentinel (as
    ``differs`` compares them)."""
    return _comparable(name, one) == _comparable(name, other)


def _label_names(labels: object) -> list[str]:
    if not isinstance(labels, list):
        return []
    return [
        str(label.get("labelName")).casefold()
        for label in labels
        if isinstance(label, Mapping) and label.get("labelName")
    ]


def _comparable(name: str, value: object) -> object:
    if value is None or value == "":
        return None
    if name == "owner":
        return _owner_key(value)
    if name in _TIMES and isinstance(value, str):
        return _instant(value) or value
    return value


def _owner_key(owner: object) -> object:
    """Who an owner object names: Sentinel fills ``objectId``/``email`` and may replace
    ``assignedTo`` with a display name once it resolved a UPN, so a UPN is compared alone."""
    if not isinstance(owner, Mapping):
        return None
    upn = owner.get("userPrincipalName")
    if isinstance(upn, str) and upn:
        return ("upn", upn.casefold())
    for field in ("assignedTo", "objectId", "email"):
        value = owner.get(field)
        if isinstance(value, str) and value:
            return (field, value)
    return None


def _instant(text: str) -> datetime | None:
    """An ISO-8601 time with up to 7 fractional digits (as .NET writes them) as aware UTC."""
    found = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?", text.strip()
    )
    if found is None:
        return None
    base, fraction, zone = found.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micro}{offset}").astimezone(UTC)
    except ValueError:
        return None


__all__ = [
    "DEFENDER_PORTAL",
    "DESCRIPTION_CUT",
    "INCIDENT_LABEL_PREFIX",
    "MANAGED",
    "OWN_LABELS",
    "READ_ONLY",
    "REDIRECTED_LABEL",
    "SHOWN_AS",
    "Desired",
    "Held",
    "defender_url",
    "description",
    "desired_incident",
    "differs",
    "hold",
    "incident_labels",
    "incident_name",
    "merge",
    "own_labels",
    "sentinel_classification",
    "sentinel_owner",
    "sentinel_status",
    "shown_alike",
    "with_own_labels",
]
