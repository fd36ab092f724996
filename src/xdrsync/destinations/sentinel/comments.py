"""Defender comments → Sentinel incident comments: deterministic names, messages, the limits.

Pure functions. Each Defender comment becomes one Sentinel comment whose name is a uuid5 of the
incident and the comment's identity (time, author, text), so delivering the same change twice
writes it once. Sentinel holds at most 100 comments of at most 30,000 characters per incident
(microsoft-apis.md §3.3, §3.6): a longer comment is cut visibly. The mirror never takes the
last ``ANALYST_RESERVE`` places: Sentinel refuses an incident's 101st comment (400), and an
incident xdrsync filled would leave its analysts no room to write, nor two-way sync any
comment to carry back. When more comments would be needed, the last place the mirror may take
holds a notice of how many more are in Defender — kept up to date under its own fixed name,
and saying so once every comment found a place — never a silent drop.

Sentinel renders a message as HTML and Markdown: Defender's text is escaped (``text.shown``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from xdrsync.destinations.sentinel.mapping import defender_url, incident_name
from xdrsync.destinations.sentinel.text import MAX_COMMENT, MAX_COMMENTS, fit, fit_shown, shown
from xdrsync.jsontext import without_surrogates
from xdrsync.tables.alert_rows import iso

if TYPE_CHECKING:
    from xdrsync.hub import CommentRow
    from xdrsync.models import Incident

#: Namespace of comment names (uuid5 of the incident and the comment's identity).
COMMENT_NAME_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:xdrsync:SentinelComment")
COMMENT_CUT: Final = "\n… [cut: the full comment is in Defender]"
#: Places of an incident's 100 the mirror leaves to Sentinel's analysts.
ANALYST_RESERVE: Final = 10


@dataclass(frozen=True)
class MirroredComment:
    """One comment as xdrsync writes it to Sentinel."""

    name: str
    message: str


@dataclass(frozen=True)
class CommentPlan:
    """What to PUT on one incident, and how many Defender comments found no place."""

    puts: tuple[MirroredComment, ...] = ()
    left_out: int = 0
    notice: MirroredComment | None = field(default=None)


def _name(*parts: str | None) -> str:
    # A JSON list keeps the parts apart whatever they contain (no delimiter to collide with).
    return str(uuid.uuid5(COMMENT_NAME_NAMESPACE, json.dumps(list(parts))))


def comment_name(
    tenant_id: str,
    incident_id: str,
    *,
    created: datetime | None,
    author: str | None,
    text: str | None,
    origin_incident_id: str | None = None,
) -> str:
    """The Sentinel name of a mirrored Defender comment on incident ``incident_id``.
    ``origin_incident_id`` is where Defender keeps it when that differs (a comment left on an
    incident that was merged into this one)."""
    origin = origin_incident_id if origin_incident_id not in (None, incident_id) else None
    return _name(
        "comment", tenant_id.lower(), incident_id, origin, iso(created), author or "", text or ""
    )


def notice_name(tenant_id: str, incident_id: str) -> str:
    """The fixed name of the "N more comments are in Defender" notice of one incident."""
    return _name("overflow", tenant_id.lower(), incident_id)


def comment_message(row: CommentRow, incident_id: str) -> str:
    """``<author> in Defender XDR, <time>:`` then the text; at most 30,000 characters."""
    author = (row.created_by or "").strip() or "someone"
    if row.written_by:
        author = f"{row.written_by} (through xdrsync)"
    when = row.created_date_time.strftime("%Y-%m-%d %H:%M UTC") if row.created_date_time else ""
    where = (
        f" on incident {row.incident_id}, merged into this one"
        if row.incident_id != (incident_id)
        else ""
    )
    header = f"{shown(author)} in Defender XDR{where}" + (f", {when}" if when else "") + ":"
    text = shown(row.comment) if row.comment and row.comment.strip() else "(empty comment)"
    return without_surrogates(fit_shown(f"{header}\n{text}", MAX_COMMENT, COMMENT_CUT))


def mirrored_comments(
    tenant_id: str, incident_id: str, rows: Sequence[CommentRow]
) -> list[MirroredComment]:
    """The incident's Defender comments (``Hub.list_comments``, oldest first) as Sentinel
    comments; each identity once."""
    found: dict[str, MirroredComment] = {}
    for row in rows:
        name = comment_name(
            tenant_id,
            incident_id,
            created=row.created_date_time,
            author=row.created_by,
            text=row.comment,
            origin_incident_id=row.incident_id,
        )
        found.setdefault(name, MirroredComment(name, comment_message(row, incident_id)))
    return list(found.values())


def redirect_comment(
    incident: Incident, *, tenant_id: str, tenant_name: str
) -> MirroredComment | None:
    """For a merged (redirected) incident: where its story goes on, in Defender and Sentinel."""
    survivor = incident.redirect_incident_id
    if not incident.is_redirected or not survivor:
        return None
    twin = incident_name(tenant_id, survivor)
    link = defender_url(
        incident.model_copy(update={"id": survivor, "incident_web_url": None}), tenant_id
    )
    message = (
        f"Defender XDR merged this incident into incident {survivor} (tenant {tenant_name}): "
        f"{link}. It continues in Sentinel as incident {twin}."
    )
    name = _name("redirect", tenant_id.lower(), incident.id or "", survivor)
    return MirroredComment(name, without_surrogates(fit(message, MAX_COMMENT, COMMENT_CUT)))


def notice_message(count: int, url: str) -> str:
    """The notice of ``count`` comments left out; with none left out (places came free), a
    notice that no longer counts any: the app cannot delete a comment (Microsoft Sentinel
    Responder has no delete on incidents), so the notice is rewritten rather than left
    saying comments are missing."""
    text = (
        f"{count} more comments are in Defender: {url}"
        if count
        else f"Every comment of the Defender incident is shown here now: {url}"
    )
    return without_surrogates(fit(text, MAX_COMMENT, COMMENT_CUT))


def plan_comments(
    wanted: Sequence[MirroredComment],
    existing: Mapping[str, str],
    *,
    notice: str,
    url: str,
    limit: int = MAX_COMMENTS,
    reserve: int = ANALYST_RESERVE,
) -> CommentPlan:
    """Which of ``wanted`` (in order of priority) to PUT, given the comments the Sentinel
    incident has (name → message, analysts' included), so that the mirror never takes the
    last ``reserve`` of its ``limit`` places. When they do not all fit, the last place the
    mirror may take goes to the notice named ``notice``; once it stands, it is kept saying how
    many are left out (none, when places came free and they all fit)."""
    missing = [c for c in wanted if c.name not in existing]
    has_notice = notice in existing
    room = limit - reserve - len(existing)  # places the mirror may still take
    if not has_notice and len(missing) <= room:
        return CommentPlan(tuple(missing))
    slots = room if has_notice else room - 1  # the notice's own place
    if slots < 0 and not has_notice:  # not even room for the notice (analysts wrote)
        return CommentPlan(left_out=len(missing))
    taken = missing[: max(slots, 0)]
    rest = len(missing) - len(taken)
    note = MirroredComment(notice, notice_message(rest, url))
    puts = (*taken, note) if existing.get(notice) != note.message else tuple(taken)
    return CommentPlan(puts, left_out=rest, notice=note)


__all__ = [
    "ANALYST_RESERVE",
    "COMMENT_CUT",
    "COMMENT_NAME_NAMESPACE",
    "CommentPlan",
    "MirroredComment",
    "comment_message",
    "comment_name",
    "mirrored_comments",
    "notice_message",
    "notice_name",
    "plan_comments",
    "redirect_comment",
]
