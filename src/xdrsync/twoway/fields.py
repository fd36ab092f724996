"""What the workspace may change in Defender, and the checks an edit must pass before it is
queued (pure; reference §2.3, §2.9, §1.3).

Values are kept in Graph's wire spelling. The pair classification/determination is one field
(``classification``): Defender accepts only some pairs, and a merge that took one half from
each side could make a pair neither side chose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from xdrsync.errors import EditRefusedError
from xdrsync.models.enums import Classification, Determination

EntityType = Literal["incident", "alert"]

STATUS: Final = "status"
OWNER: Final = "assignedTo"
CLASSIFICATION: Final = "classification"
TAGS: Final = "customTags"
COMMENT: Final = "comment"

#: Fields whose conflicts a policy decides (tags merge set-wise, comments append).
POLICY_FIELDS: Final = (STATUS, OWNER, CLASSIFICATION)
FIELDS: Final[dict[EntityType, tuple[str, ...]]] = {
    "incident": (STATUS, OWNER, CLASSIFICATION, TAGS, COMMENT),
    "alert": (STATUS, OWNER, CLASSIFICATION, COMMENT),
}

#: Statuses a client may set (§2.9): ``redirected`` is Defender's own (merges) and
#: ``awaitingAction`` is for Defender Experts only.
SETTABLE_STATUS: Final[dict[EntityType, tuple[str, ...]]] = {
    "incident": ("active", "inProgress", "resolved"),
    "alert": ("new", "inProgress", "resolved"),
}
CLOSED_STATUS: Final = "resolved"
#: Sentinel's lifecycle names, accepted on input and mapped as the connector maps them (§1.3).
SENTINEL_STATUS: Final[dict[EntityType, dict[str, str]]] = {
    "incident": {"new": "active", "active": "inProgress", "closed": "resolved"},
    "alert": {"active": "inProgress", "closed": "resolved"},
}

#: Which determinations Defender accepts with which classification (§2.3, the legacy update
#: page's table, in the SDK's names). ``other`` goes with every class.
PAIRS: Final[dict[str, frozenset[str]]] = {
    "truePositive": frozenset(
        {
            "multiStagedAttack",
            "maliciousUserActivity",
            "compromisedAccount",
            "malware",
            "phishing",
            "unwantedSoftware",
            "apt",
            "securityPersonnel",
            "other",
        }
    ),
    "informationalExpectedActivity": frozenset(
        {"securityTesting", "lineOfBusinessApplication", "confirmedActivity", "other"}
    ),
    "falsePositive": frozenset({"notMalicious", "notEnoughDataToValidate", "other"}),
    "unknown": frozenset({"unknown"}),
}

#: Defender documents no limit on a tag; the portal's tag box takes 128 characters
#: (UNVERIFIED), and a longer tag is refused here rather than cut.
MAX_TAG_LENGTH: Final = 128
#: A comment longer than this is refused: Sentinel mirrors at most 30,000 characters.
MAX_COMMENT_LENGTH: Final = 30_000
_ADDRESS: Final = re.compile(r"^[^@\s<>\"',;]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]{2,}$")


@dataclass(frozen=True)
class Pair:
    classification: str
    determination: str

    def to_json(self) -> dict[str, str]:
        return {"classification": self.classification, "determination": self.determination}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Pair | None:
        """The pair in its members' canonical names, however Graph spelled it: some answers
        say ``TruePositive``, and determinations come under older names too (``clean`` is
        ``notMalicious``; reference §2.3), which ``PAIRS`` and ``pair`` would not know."""
        if not value:
            return None
        return cls(
            Classification(str(value.get("classification") or "unknown")).value,
            Determination(str(value.get("determination") or "unknown")).value,
        )


def status(entity: EntityType, value: str) -> str:
    """A status the user typed, in Defender's spelling. Sentinel's lifecycle names, spelled
    as the workspace's tables show them (``New``, ``Active``, ``Closed``), are taken first and
    mapped, so typing back a status the workspace shows keeps it: ``Active`` is Defender's
    ``inProgress``, while ``active`` (any other spelling) is Defender's ``active``."""
    wanted = value.strip()
    mapped = SENTINEL_STATUS[entity].get(wanted.lower())
    if mapped is not None and wanted == wanted.capitalize():
        return mapped
    lowered = wanted.lower().replace(" ", "").replace("_", "")
    for member in SETTABLE_STATUS[entity]:
        if member.lower() == lowered:
            return member
    if mapped is not None:
        return mapped
    raise EditRefusedError(
        f"status {value!r} is not one Defender accepts on an {entity}: "
        f"{', '.join(SETTABLE_STATUS[entity])}"
    )


def owner(value: str) -> str | None:
    """An address to assign to, or None (``""``) to unassign."""
    wanted = value.strip()
    if not wanted:
        return None
    if not _ADDRESS.match(wanted):
        raise EditRefusedError(f"owner {value!r} is not an address (user@domain)")
    return wanted


def pair(classification: str | None, determination: str | None, current: Pair | None) -> Pair:
    """The pair an edit asks for: a missing half is taken from ``current`` where it still
    fits, else ``other``/``unknown``; refused when Defender would not accept the pair."""
    if classification is not None:
        found = Classification.parse(classification)
        if not found.is_known or found.value == "unknownFutureValue":
            raise EditRefusedError(
                f"classification {classification!r} is not one Defender accepts: "
                + ", ".join(PAIRS)
            )
        cls_value = found.value
    else:
        cls_value = current.classification if current else "unknown"
    if determination is not None:
        found_det = Determination.parse(determination)
        if not found_det.is_known or found_det.value == "unknownFutureValue":
            raise EditRefusedError(f"determination {determination!r} is not one Defender accepts")
        det_value = found_det.value
    elif current is not None and current.determination in PAIRS.get(cls_value, ()):
        det_value = current.determination
    else:
        det_value = "unknown" if cls_value == "unknown" else "other"
    allowed = PAIRS.get(cls_value, frozenset())
    if det_value not in allowed:
        raise EditRefusedError(
            f"determination {det_value!r} does not go with classification {cls_value!r}; "
            f"Defender accepts: {', '.join(sorted(allowed))}"
        )
    return Pair(cls_value, det_value)


def tags(values: tuple[str, ...]) -> tuple[str, ...]:
    """Tags to add or remove, stripped and each once; refused when empty or too long."""
    out: dict[str, None] = {}
    for value in values:
        tag = value.strip()
        if not tag:
            raise EditRefusedError("a tag cannot be empty")
        if len(tag) > MAX_TAG_LENGTH:
            raise EditRefusedError(
                f"tag {tag[:40]!r}… is {len(tag)} characters; Defender takes at most "
                f"{MAX_TAG_LENGTH}"
            )
        out[tag] = None
    return tuple(out)


def comment(value: str) -> str:
    if not value.strip():
        raise EditRefusedError("a comment needs text")
    if len(value) > MAX_COMMENT_LENGTH:
        raise EditRefusedError(
            f"the comment is {len(value)} characters; at most {MAX_COMMENT_LENGTH} are taken"
        )
    return value


def is_closed(entity: EntityType, value: str | None) -> bool:
    return (value or "").lower() == CLOSED_STATUS.lower()


def classified(value: Pair | None) -> bool:
    return value is not None and value.classification != "unknown"


#: Where an edit comes from when an incident may close unclassified by it: Sentinel closes
#: as Undetermined (an analyst's edit read back from a Sentinel destination); the workspace's
#: own commands need a classification to close.
UNCLASSIFIED_CLOSE_ORIGINS: Final = ("sentinel:",)


def may_close_unclassified(origin: str) -> bool:
    return origin.startswith(UNCLASSIFIED_CLOSE_ORIGINS)
