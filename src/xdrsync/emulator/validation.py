"""Checks on PATCH bodies: only writable properties, only valid enum members (any case);
and how Graph spells the enum values in its answer to a PATCH and in some reads."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from xdrsync.emulator.catalog import DETERMINATIONS

_INCIDENT_STATUS = ("active", "resolved", "inProgress", "redirected", "awaitingAction")
#: Only Defender Experts set ``awaitingAction`` (reference §2.3); §2.9's settable statuses
#: leave it out. An app's PATCH is refused it; an analyst's portal edit is not.
_EXPERTS_ONLY_STATUS = frozenset({"awaitingAction"})
_ALERT_STATUS = ("new", "inProgress", "resolved")
_SEVERITY = ("unknown", "informational", "low", "medium", "high")
_CLASSIFICATION = ("unknown", "falsePositive", "truePositive", "informationalExpectedActivity")
#: The names the incident resource page and the older update page give four determinations
#: (reference §2.3), where the generated SDK and the alert page say the key's.
OLDER_DETERMINATIONS: Final = {
    "compromisedAccount": "compromisedUser",
    "notMalicious": "clean",
    "notEnoughDataToValidate": "insufficientData",
    "confirmedActivity": "confirmedUserActivity",
}
# Both documented vocabularies are accepted on write, as the service does.
_DETERMINATION = (
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "phishing",
    "maliciousUserActivity",
    "lineOfBusinessApplication",
    *OLDER_DETERMINATIONS,
    *OLDER_DETERMINATIONS.values(),
)


#: Which determinations go with which classification: the legacy update page's table
#: (reference §2.3, ``catalog.DETERMINATIONS``, which the seeded stories draw from), and
#: ``unknown`` with ``unknown``. ``apt`` and ``securityPersonnel`` are in no row (deprecated
#: in 2022, §2.3).
DOCUMENTED_PAIRS: Final[Mapping[str, tuple[str, ...]]] = {
    **DETERMINATIONS,
    "unknown": ("unknown",),
}
_NEWER_DETERMINATIONS: Final = {old: new for new, old in OLDER_DETERMINATIONS.items()}


class PatchError(ValueError):
    """The body asks for something Graph would refuse with 400."""


def _enum(field: str, value: Any, members: tuple[str, ...], *, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if isinstance(value, str):
        for member in members:
            if member.lower() == value.lower():
                return member
    raise PatchError(
        f"Invalid value '{value}' for property '{field}'. Allowed values: {', '.join(members)}."
    )


def validate_patch(
    body: Mapping[str, Any], writable: Collection[str], *, incident: bool, portal: bool = False
) -> dict[str, Any]:
    """Return the body with enum values in their canonical spelling, or raise PatchError.

    ``portal``: the edit is an analyst's in the Defender portal (the control surface), who
    may also set what only Defender Experts may (``awaitingAction``); else it is an app's
    Graph PATCH."""
    unknown = sorted(set(body) - set(writable) - {"@odata.type"})
    if unknown:
        raise PatchError(
            f"Property '{unknown[0]}' cannot be updated. Updatable properties: "
            f"{', '.join(sorted(writable))}."
        )
    changes: dict[str, Any] = {}
    for field, value in body.items():
        if field == "@odata.type":
            continue
        if field == "status":
            changes[field] = _enum(field, value, _INCIDENT_STATUS if incident else _ALERT_STATUS)
            if changes[field] in _EXPERTS_ONLY_STATUS and not portal:
                raise PatchError(
                    f"Invalid value '{value}' for property '{field}': only Microsoft Defender "
                    "Experts can set it."
                )
        elif field == "severity":
            changes[field] = _enum(field, value, _SEVERITY)
        elif field == "classification":
            changes[field] = _enum(field, value, _CLASSIFICATION, nullable=True)
        elif field == "determination":
            changes[field] = _enum(field, value, _DETERMINATION, nullable=True)
        elif field == "customTags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise PatchError("Property 'customTags' must be a collection of strings.")
            changes[field] = list(dict.fromkeys(value))
        elif value is not None and not isinstance(value, str):
            raise PatchError(f"Property '{field}' must be a string.")
        else:
            changes[field] = value
    return changes


def unlisted_pair(changes: Mapping[str, Any]) -> str | None:
    """Graph's 400 message for the classification/determination pair a PATCH sets (``changes``
    as ``validate_patch`` returns them), when the pair is not in ``DOCUMENTED_PAIRS``; None
    when it is, or when the PATCH does not set both halves. The wording is the emulator's:
    Graph's for this refusal is not documented."""
    classification, determination = changes.get("classification"), changes.get("determination")
    if not isinstance(classification, str) or not isinstance(determination, str):
        return None
    allowed = DOCUMENTED_PAIRS.get(classification, ())
    if _NEWER_DETERMINATIONS.get(determination, determination) in allowed:
        return None
    return (
        f"Invalid value '{determination}' for property 'determination' with classification "
        f"'{classification}'. Allowed values: {', '.join(allowed) or 'none'}."
    )


#: The properties Graph's documented PATCH answer spells in PascalCase
#: (security-incident-update: ``"classification": "TruePositive", "determination":
#: "MultiStagedAttack", "status": "Active"``; reference §2.3), where its other answers and
#: the emulator's store say ``truePositive``.
PASCAL_IN_PATCH_ANSWER: Final = ("status", "classification", "determination")


def as_patch_answered(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as Graph's answer to a PATCH spells it: ``PASCAL_IN_PATCH_ANSWER`` in
    PascalCase (the emulator takes the documented example as the rule, for alerts too)."""
    return _pascal(record, PASCAL_IN_PATCH_ANSWER)


#: What a respelled read spells in PascalCase (the documented examples' "Active", "Medium",
#: "TruePositive").
PASCAL_IN_RESPELLED_READ: Final = ("status", "severity", "classification", "determination")


def as_respelled(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as some of Graph's answers spell it (``FaultSettings.respelled_rate``): its
    determination under the older name, then ``PASCAL_IN_RESPELLED_READ`` in PascalCase
    (``notMalicious`` reads ``Clean``), and its comments in the older shape of the same
    documented list and update examples (reference §2.7): ``{comment, createdBy,
    createdTime}``. What a client must take for the same values."""
    out = dict(record)
    determination = out.get("determination")
    if isinstance(determination, str):
        out["determination"] = OLDER_DETERMINATIONS.get(determination, determination)
    comments = out.get("comments")
    if isinstance(comments, list):
        out["comments"] = [_older_comment(c) for c in comments]
    return _pascal(out, PASCAL_IN_RESPELLED_READ)


def _older_comment(comment: Any) -> Any:
    if not isinstance(comment, Mapping):
        return comment
    return {
        "comment": comment.get("comment"),
        "createdBy": comment.get("createdByDisplayName"),
        "createdTime": comment.get("createdDateTime"),
    }


def _pascal(record: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = dict(record)
    for field in names:
        value = out.get(field)
        if isinstance(value, str) and value:
            out[field] = value[:1].upper() + value[1:]
    return out
