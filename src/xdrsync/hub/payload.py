"""Pure helpers that turn Graph payloads into what the hub stores: versions, hashes, keys.

Nothing here touches the database, so the version guard's inputs can be tested table-driven.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, Final

from xdrsync import jsontext

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
TICKS_PER_SECOND: Final = 10_000_000  # Graph writes 100 ns precision: 7 fractional digits

# Keys of the incident payload that are stored elsewhere (alerts have their own rows).
_INCIDENT_CHILD_KEYS: Final = ("alerts",)

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def ticks_from_text(text: str) -> int | None:
    """100-ns ticks since the epoch for an ISO 8601 timestamp, or None if it isn't one.

    Python's datetime keeps microseconds only; Graph timestamps carry 7 digits, and two
    versions 100 ns apart are two versions, so the guard compares integer ticks instead.
    """
    match = _ISO.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    hours, minutes, seconds = int(hour), int(minute), int(second)
    # What ``datetime`` accepts, counted without making one (a commit reads some 13 of
    # these per incident): the day through its calendar, the time and the zone by range.
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    offset = _zone_seconds(zone)
    try:
        days = _epoch_days(int(year), int(month), int(day))
    except ValueError:
        return None
    if offset is None:
        return None
    whole = days * 86_400 + hours * 3600 + minutes * 60 + seconds - offset
    digits = (fraction or "")[:7].ljust(7, "0")
    return whole * TICKS_PER_SECOND + int(digits)


_EPOCH_ORDINAL: Final = EPOCH.toordinal()


@lru_cache(maxsize=4096)  # a backfill's timestamps fall on few days
def _epoch_days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date; ValueError when there is no such date."""
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


@lru_cache(maxsize=256)
def _zone_seconds(zone: str | None) -> int | None:
    """A zone's offset east of UTC in seconds; None when ``timezone`` would refuse it (a day
    or more)."""
    if zone is None or zone in ("Z", "z"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    offset = int(zone[1:3]) * 3600 + int(zone[-2:]) * 60
    return sign * offset if offset < 86_400 else None


def ticks_from_datetime(moment: datetime) -> int:
    """Ticks for an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1) * 10


def version_ticks(raw: Mapping[str, Any], parsed: datetime | None) -> int:
    """The version of a Graph record: its ``lastUpdateDateTime`` at full precision.

    The raw text wins (it has the 7th digit); the model's datetime is the fallback when the
    text is missing or unusual. A record with neither sorts before every real version.
    """
    text = raw.get("lastUpdateDateTime")
    if isinstance(text, str):
        ticks = ticks_from_text(text)
        if ticks is not None:
            return ticks
    if parsed is not None:
        return ticks_from_datetime(parsed)
    return 0


def datetime_from_ticks(ticks: int) -> datetime:
    """The aware UTC datetime of a tick count (the 7th digit is dropped)."""
    return EPOCH + timedelta(microseconds=ticks // 10)


def version_text(ticks: int | None) -> str | None:
    """A tick count as Graph writes it (``2024-05-01T10:00:00.1234567Z``), for humans."""
    if ticks is None:
        return None
    seconds, rest = divmod(ticks, TICKS_PER_SECOND)
    # isoformat of a whole second is "YYYY-MM-DDTHH:MM:SS" (strftime costs ten times more)
    stamp = (_NAIVE_EPOCH + timedelta(seconds=seconds)).isoformat()
    return f"{stamp}.{rest:07d}Z"


def _is_annotation(key: str) -> bool:
    return key.startswith("@odata.") or "@odata." in key


def _strip_annotations(value: Any, *, top: bool) -> Any:
    # At the top level every annotation goes, ``@odata.type`` included: the same alert arrives
    # embedded in an incident and from alerts_v2, and the two shapes must hash alike or the
    # streams would take turns "updating" it. Deeper down ``@odata.type`` is data — it is the
    # evidence discriminator — so only the other annotations are dropped there.
    if isinstance(value, Mapping):
        return {
            key: _strip_annotations(item, top=False)
            for key, item in value.items()
            if not (_is_annotation(key) and (top or key != "@odata.type"))
        }
    if isinstance(value, list | tuple):
        return [_strip_annotations(item, top=False) for item in value]
    return value


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys, as UTF-8: equal content gives equal bytes."""
    return jsontext.dumps_utf8(value, sort_keys=True)


def stored_json(value: Any) -> str:
    """Compact JSON that keeps the payload's own key order (for storage and replay)."""
    return jsontext.dumps(value)


def incident_payload(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The incident as stored: everything Graph sent except its alerts (stored as rows)."""
    return {
        key: value
        for key, value in raw.items()
        if key not in _INCIDENT_CHILD_KEYS and not key.startswith("alerts@")
    }


def alert_ids_of(raw: Mapping[str, Any]) -> list[str] | None:
    """The alert ids an incident payload listed, or None when it came without ``alerts``."""
    alerts = raw.get("alerts")
    if not isinstance(alerts, list):
        return None
    return [str(item["id"]) for item in alerts if isinstance(item, Mapping) and "id" in item]


def evidence_item(alert_payload: Mapping[str, Any], ordinal: int) -> dict[str, Any]:
    """The JSON of an alert's evidence item by its place in the list: the hub's evidence rows
    hold the columns, and each item's JSON is only in its alert's payload (migration 0006).
    `{}` when the payload has no such item."""
    items = alert_payload.get("evidence")
    item = items[ordinal] if isinstance(items, list) and 0 <= ordinal < len(items) else None
    return item if isinstance(item, dict) else {}


def alert_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What the incident queue reads of an alert besides its typed columns, kept in columns of
    its own so that the queue never parses the alert's payload (mostly evidence):
    ``categories`` (a JSON list: ``categories`` then ``category``, each once) and the
    ``first_activity``/``last_activity`` ticks."""
    named: dict[str, None] = {}
    listed = raw.get("categories")
    for value in [*(listed if isinstance(listed, list) else ()), raw.get("category")]:
        if isinstance(value, str) and value:
            named.setdefault(value, None)
    return {
        "categories": jsontext.dumps(list(named)) if named else None,
        "first_activity": _activity_ticks(raw.get("firstActivityDateTime")),
        "last_activity": _activity_ticks(raw.get("lastActivityDateTime")),
    }


def _activity_ticks(value: object) -> int | None:
    return ticks_from_text(value) if isinstance(value, str) and value else None


# A JSON object key holding "@odata." (keys are the only strings followed by a colon; UTF-8
# never puts a quote or a backslash byte inside another character).
_ANNOTATION_KEY = re.compile(rb'"([^"\\]*@odata\.[^"\\]*)":')


def content_hash(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (UTF-8) of a payload without its OData annotations."""
    top = {key: value for key, value in payload.items() if "@odata." not in key}
    body = canonical_json(top)
    # Walking every nested object is the costliest part of a commit, and nested annotations
    # other than the evidence discriminators are rare: walk only when the text has one.
    # Counting is quick; the keys are looked at only when some "@odata." is not a
    # discriminator key (another annotation, or the text inside a value).
    if body.count(b"@odata.") != body.count(b'"@odata.type":') and any(
        key != b"@odata.type" for key in _ANNOTATION_KEY.findall(body)
    ):
        body = canonical_json(_strip_annotations(top, top=False))
    # The bytes hashed are the text's UTF-8, as they always were (the text was once made,
    # then encoded again): a stored hash keeps matching an unchanged record.
    return hashlib.sha256(body).hexdigest()


def comment_key(created: datetime | None, author: str | None, text: str | None) -> str:
    """A comment's identity: Graph gives comments no id, and they can't be edited or deleted,
    so when, who and what together name one comment across every re-read."""
    moment = ""
    if created is not None:
        aware = created if created.tzinfo is not None else created.replace(tzinfo=UTC)
        moment = aware.astimezone(UTC).isoformat()
    body = "\x1f".join((moment, author or "", text or ""))
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def enum_text(value: object) -> str | None:
    """The canonical text of an enum-typed (or plain) field, e.g. ``"redirected"`` whether
    Graph wrote ``Redirected`` or ``redirected``; None stays None."""
    if value is None:
        return None
    if type(value) is str:  # most calls (an evidence item's kind): no ``value`` to look up
        return value
    canonical = getattr(value, "value", None)
    if isinstance(value, Enum) or isinstance(canonical, str):
        return str(canonical)
    return str(value)
