"""Request bodies of incident and comment PUTs: required fields, enums, limits, read-only fields.

Enums and limits are Microsoft's (microsoft-apis.md §3.2, §3.3, §3.6); enum values are matched
exactly, as the API spells them. Read-only and unknown properties in a body are ignored, not
refused. Lengths are counted as the .NET service counts them, in UTF-16 code units: a
character outside the Basic Multilingual Plane (an emoji) counts twice. What the emulator
assumes beyond the documentation: ``status`` Closed needs a ``classification``; a label's
``labelType`` is the server's to set. Observed by a third party: a classification other than
Undetermined needs a ``classificationReason``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from xdrsync.emulator.odata import instant_ticks
from xdrsync.emulator.sentinel.errors import bad_request
from xdrsync.emulator.timefmt import graph_time

SEVERITIES: Final = ("High", "Medium", "Low", "Informational")
STATUSES: Final = ("New", "Active", "Closed")
CLASSIFICATIONS: Final = ("Undetermined", "TruePositive", "BenignPositive", "FalsePositive")
CLASSIFICATION_REASONS: Final = (
    "SuspiciousActivity",
    "SuspiciousButExpected",
    "IncorrectAlertLogic",
    "InaccurateData",
)
OWNER_TYPES: Final = ("Unknown", "User", "Group")
LABEL_TYPES: Final = ("User", "AutoAssigned")
OWNER_KEYS: Final = ("objectId", "email", "assignedTo", "userPrincipalName", "ownerType")

MAX_DESCRIPTION: Final = 5_000
MAX_COMMENT: Final = 30_000
MAX_COMMENTS: Final = 100

# The properties a PUT writes; everything else in ``properties`` is read-only or unknown.
WRITABLE: Final = (
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "classificationReason",
    "classificationComment",
    "owner",
    "labels",
    "firstActivityTimeUtc",
    "lastActivityTimeUtc",
)
# instant_ticks counts from day 0 of the proleptic calendar (0001-01-01 is ordinal 1).
_ORDINAL_ONE: Final = datetime(1, 1, 1, tzinfo=UTC)
_TICKS_PER_DAY: Final = 86_400 * 10_000_000


def empty_owner() -> dict[str, Any]:
    return {key: None for key in OWNER_KEYS} | {"ownerType": "Unknown"}


def read_resource_body(body: Any) -> tuple[dict[str, Any], str | None]:
    """``{"etag"?, "properties": {...}}`` → (properties, etag)."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    etag = body.get("etag")
    if etag is not None and not isinstance(etag, str):
        raise bad_request("The 'etag' property must be a string.")
    properties = body.get("properties")
    if properties is None:
        raise bad_request("The 'properties' property is required.")
    if not isinstance(properties, dict):
        raise bad_request("The 'properties' property must be an object.")
    return properties, etag


def _text(props: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = props.get(name)
    if value is None:
        if required:
            raise bad_request(f"The '{name}' property is required.")
        return None
    if not isinstance(value, str):
        raise bad_request(f"The '{name}' property must be a string.")
    if required and not value.strip():
        raise bad_request(f"The '{name}' property is required and cannot be empty.")
    return value


def _enum(
    props: Mapping[str, Any], name: str, allowed: tuple[str, ...], *, required: bool = False
) -> str | None:
    value = _text(props, name, required=required)
    if value is not None and value not in allowed:
        raise bad_request(
            f"The '{name}' value '{value}' is not valid; it must be one of {', '.join(allowed)}."
        )
    return value


def _instant(props: Mapping[str, Any], name: str) -> str | None:
    value = _text(props, name)
    if value is None:
        return None
    ticks = instant_ticks(value.strip())
    if ticks is None:
        raise bad_request(f"The '{name}' value '{value}' is not a valid date-time.")
    return graph_time(_ORDINAL_ONE + timedelta(microseconds=(ticks - _TICKS_PER_DAY) // 10))


def _owner(value: Any) -> dict[str, Any]:
    if value is None:
        return empty_owner()
    if not isinstance(value, dict):
        raise bad_request("The 'owner' property must be an object.")
    owner = empty_owner()
    for key in ("email", "assignedTo", "userPrincipalName"):
        owner[key] = _text(value, key)
    object_id = _text(value, "objectId")
    if object_id is not None:
        try:
            object_id = str(uuid.UUID(object_id))
        except ValueError:
            raise bad_request(f"The 'owner.objectId' value '{object_id}' is not a GUID.") from None
    owner["objectId"] = object_id
    owner["ownerType"] = _enum(value, "ownerType", OWNER_TYPES) or "Unknown"
    return owner


def _labels(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("The 'labels' property must be an array.")
    labels: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            raise bad_request("Each label must be an object with a 'labelName'.")
        name = _text(item, "labelName", required=True)
        assert name is not None
        _enum(item, "labelType", LABEL_TYPES)  # validated, then left to the server
        if name not in seen:
            seen.add(name)
            labels.append({"labelName": name, "labelType": "User"})
    return labels


def incident_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """The writable properties of a PUT body, checked and normalised; absent ones cleared."""
    title = _text(props, "title", required=True)
    severity = _enum(props, "severity", SEVERITIES, required=True)
    status = _enum(props, "status", STATUSES, required=True)
    description = _text(props, "description")
    if description is not None and _length(description) > MAX_DESCRIPTION:
        raise bad_request(
            f"The 'description' property is {_length(description)} characters long; the limit "
            f"is {MAX_DESCRIPTION}."
        )
    classification = _enum(props, "classification", CLASSIFICATIONS)
    if status == "Closed" and classification is None:
        raise bad_request("The 'classification' property is required when 'status' is 'Closed'.")
    reason = _enum(props, "classificationReason", CLASSIFICATION_REASONS)
    if classification not in (None, "Undetermined") and reason is None:
        # Sentinel's own words, as a third party met them closing an incident.
        raise bad_request(f"classification '{classification}' must have classificationReason.")
    written: dict[str, Any] = {
        "title": title,
        "description": description,
        "severity": severity,
        "status": status,
        "classification": classification,
        "classificationReason": reason,
        "classificationComment": _text(props, "classificationComment"),
        "owner": _owner(props.get("owner")),
        "labels": _labels(props.get("labels")),
        "firstActivityTimeUtc": _instant(props, "firstActivityTimeUtc"),
        "lastActivityTimeUtc": _instant(props, "lastActivityTimeUtc"),
    }
    return {k: v for k, v in written.items() if v is not None}


def comment_message(props: Mapping[str, Any]) -> str:
    message = _text(props, "message", required=True)
    assert message is not None
    if _length(message) > MAX_COMMENT:
        raise bad_request(
            f"The 'message' property is {_length(message)} characters long; the limit is "
            f"{MAX_COMMENT}."
        )
    return message


def _length(text: str) -> int:
    """A .NET ``string.Length``: UTF-16 code units (a lone surrogate counts one)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
