"""The incident queue's index: one ``queue_entry`` row per incident, kept from the hub's change
sequence by a destination of its own, so that the console filters and sorts on indexed columns
instead of parsing payloads.

How it stays right:

* **A row is recomputed, never patched.** For each batch of changes the affected incidents
  (incident changes; alert changes through every incident the alert ever named, and through
  listings seen to name it) are recomputed whole from the hub's *current* tables, with the
  same membership rule as the rest of the hub (``reads._members``). Recomputing is
  idempotent, so delivering a batch twice (a crash between delivery and acknowledgement) only
  writes the same rows again.
* **Rows never go back in time.** Each row carries the change number its snapshot was read
  at (``seq``: the hub's counter when the batch was computed); an upsert only replaces a row
  read at the same or an older position. Two processes delivering at once cannot leave the
  older picture behind.
* **The cursor moves with the rows.** The hub cursor named ``console`` is advanced in the same
  write transaction as the rows (the runner acknowledges again afterwards, which is a no-op),
  so ``position()`` is simply that cursor. ``max(queue_entry.seq)`` would not do: a row is
  rewritten with newer positions while older changes are still undelivered.
* **Replay** from the first change empties the table (a rebuild); from a later change it only
  moves the cursor back, since every affected row is then rewritten anyway. Either way the
  table change and the cursor move are one transaction.

Columns: ``products`` holds the alerts' Graph ``serviceSource`` values (e.g.
``microsoftDefenderForEndpoint``): the one product vocabulary that is stable, enumerable and
what the portal's "Service sources" filter uses (``productName`` is free text and often
missing). ``tactics`` are the MITRE tactics named by the alerts' ``category``/``categories``.
``search`` is the lower-cased title, alert titles, comments (incident and alert), evidence
names and entity keys, and the identifying attributes the entity cards show (a device's DNS
name, a file's hashes, an account's UPN: the alert's ``evidence_terms``, hub migration 0010),
at most ``SEARCH_CAP`` characters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from sqlalchemy import Connection, Table, and_, delete, select

from xdrsync import jsontext
from xdrsync.destinations.base import Rejection
from xdrsync.hub import ChangeRow, Hub
from xdrsync.hub import schema as s
from xdrsync.hub.chunks import chunks
from xdrsync.hub.payload import datetime_from_ticks
from xdrsync.hub.reads import _members
from xdrsync.hub.state import advance_cursor
from xdrsync.layout import QUEUE_DESTINATION
from xdrsync.tables.vocab import CACHED_TEXT, NEWER_SEVERITY, tactic

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

SEARCH_CAP: Final = 16 * 1024  # characters of ``search`` per incident
#: Graph severities in rank order; anything else (unknownFutureValue, missing) ranks -1.
SEVERITY_RANK: Final[Mapping[str, int]] = {"informational": 0, "low": 1, "medium": 2, "high": 3}
#: Alerts Defender lists under an incident whose own ``incidentId`` names another one are
#: remembered (in memory, bounded) so that their later changes refresh that incident too.
MAX_LISTED_ELSEWHERE: Final = 100_000

Key = tuple[str, str]  # (tenant_id, incident_id)


#: The rank of a missing or unknown severity (the queue's "unknown").
UNKNOWN_RANK: Final = -1
#: Graph's own words for "no severity": the queue's "unknown" (``unknownFutureValue`` is the
#: sentinel Graph sends to a client that did not ask for newer members).
UNKNOWN_SEVERITIES: Final = frozenset({"", "unknown", "unknownfuturevalue"})
#: The rank of a severity newer than this version (Graph's ``critical``, say): High's, as the
#: log tables and Sentinel read it (``tables.vocab.NEWER_SEVERITY``), so that it counts,
#: filters and sorts with the severe incidents rather than below the informational ones.
NEWER_RANK: Final = SEVERITY_RANK[NEWER_SEVERITY.lower()]


def severity_rank(severity: str | None) -> int:
    lowered = (severity or "").strip().lower()
    if lowered in SEVERITY_RANK:
        return SEVERITY_RANK[lowered]
    return UNKNOWN_RANK if lowered in UNKNOWN_SEVERITIES else NEWER_RANK


def is_newer_severity(severity: str | None) -> bool:
    """Whether ``severity`` is a member newer than this version (neither a Graph severity
    this version knows nor a missing/unknown one)."""
    lowered = (severity or "").strip().lower()
    return lowered not in SEVERITY_RANK and lowered not in UNKNOWN_SEVERITIES


def encode_list(values: Iterable[str]) -> str:
    """``|a|b|`` (empty list: ``|``): one ``LIKE '%|a|%'`` finds a member. ``%`` and ``|``
    inside a value are percent-escaped so that no value can split into two."""
    return "|" + "".join(_escape_member(v) + "|" for v in values)


def decode_list(text: str | None) -> list[str]:
    if not text:
        return []
    return [_unescape_member(v) for v in text.strip("|").split("|") if v]


def _escape_member(value: str) -> str:
    return value.replace("%", "%25").replace("|", "%7C")


def _unescape_member(value: str) -> str:
    return value.replace("%7C", "|").replace("%25", "%")


def member_pattern(value: str) -> str:
    """The LIKE pattern (escape character ``\\``) that finds ``value`` in an encoded list."""
    return "%|" + like_escape(_escape_member(value)) + "|%"


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Incident(NamedTuple):
    """The incident table's columns a row is made of (with its current payload)."""

    id: str
    version: int
    display_name: str | None
    severity: str | None
    status: str | None
    assigned_to: str | None
    classification: str | None
    determination: str | None
    created_date_time: datetime | None
    merged_into: str | None
    payload: str


class _Alert(NamedTuple):
    """An alert's summary columns (its payload, mostly evidence, is never read here)."""

    service_source: str | None
    title: str | None
    categories: str | None  # a JSON list
    first_activity: int | None  # ticks
    last_activity: int | None
    evidence_terms: str | None  # one per line


@dataclass
class _Parts:
    """What one incident's row is made of, gathered over the batch's few queries."""

    incident: _Incident
    alerts: list[_Alert]
    comments: list[str]  # the incident's and its alerts' comments
    texts: list[str]  # its evidence's names and keys (its attributes: the alerts' columns)


class QueueIndex:
    """Keeps ``queue_entry`` in step with the hub (a destination; see the module's notes)."""

    #: Changes per delivery at most (a backlog: a restart, a replay): a few bulk queries and
    #: one short write each. Replaying a 4,000-incident backfill's changes took 1.8 CPU-s in
    #: batches of 500, 1.4 in 1,500 and 1.35 in 3,000.
    batch_size = 1500
    #: Its rows come from the hub's tables, not from the changes' payloads (`ReadsNoPayloads`).
    reads_payloads: Literal[False] = False

    def __init__(
        self,
        hub: Hub,
        *,
        name: str = QUEUE_DESTINATION,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.hub = hub
        self.name = name
        self.clock = clock
        self._listed_elsewhere: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    # -- the Destination protocol ------------------------------------------------------------

    def position(self) -> None:
        return None  # the hub cursor, which deliver() moves in the rows' own transaction

    def accepts(self, change: ChangeRow) -> bool:
        return True

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        if not changes:
            return ()
        with self.hub.reading() as conn:
            snapshot = int(
                conn.execute(
                    select(s.counter.c.value).where(s.counter.c.name == s.SEQ_COUNTER)
                ).scalar_one()
            )
            keys = self._affected(conn, changes)
            rows = compute_rows(conn, keys, snapshot, self._remember_listed)
        with self.hub.writing() as conn:
            upsert_rows(conn, rows)
            advance_cursor(conn, self.name, changes[-1].seq, self.clock(), reset=False)
        return ()

    def replay_from(self, seq: int) -> None:
        """From the first change: rebuild (the table is emptied). From a later one: the
        affected rows are rewritten as the changes come again."""
        with self.hub.writing() as conn:
            if seq <= 1:
                conn.execute(delete(s.queue_entry))
            advance_cursor(conn, self.name, max(seq - 1, 0), self.clock(), reset=True)

    def check(self) -> list[str]:
        with self.hub.reading() as conn:
            conn.execute(select(s.queue_entry.c.tenant_id).limit(1)).all()
        return [f"{self.name}: the console's incident queue index is readable"]

    def close(self) -> None:
        return None

    # -- which incidents a batch touches -----------------------------------------------------

    def refresh(self, keys: Sequence[Key]) -> int:
        """Recompute these incidents' rows now (e.g. after a repair); returns rows written."""
        with self.hub.reading() as conn:
            snapshot = int(
                conn.execute(
                    select(s.counter.c.value).where(s.counter.c.name == s.SEQ_COUNTER)
                ).scalar_one()
            )
            rows = compute_rows(conn, sorted(set(keys)), snapshot, self._remember_listed)
        with self.hub.writing() as conn:
            upsert_rows(conn, rows)
        return len(rows)

    def _affected(self, conn: Connection, changes: Sequence[ChangeRow]) -> list[Key]:
        keys: set[Key] = set()
        alerts: dict[str, set[str]] = {}
        for change in changes:
            if change.entity_type == "incident":
                keys.add((change.tenant_id, change.entity_id))
                continue
            if change.incident_id:
                keys.add((change.tenant_id, change.incident_id))
            alerts.setdefault(change.tenant_id, set()).add(change.entity_id)
        av = s.alert_version
        for tenant_id, ids in alerts.items():
            # Every incident the alert ever named: it may have left one (a move, a merge).
            for part in chunks(sorted(ids)):
                query = (
                    select(av.c.incident_id)
                    .where(av.c.tenant_id == tenant_id, av.c.alert_id.in_(part))
                    .distinct()
                )
                keys.update((tenant_id, i) for i in conn.execute(query).scalars() if i)
            with self._lock:
                for alert_id in ids:
                    for incident_id in self._listed_elsewhere.get((tenant_id, alert_id), ()):
                        keys.add((tenant_id, incident_id))
        return sorted(keys)

    def _remember_listed(self, tenant_id: str, alert_id: str, incident_id: str) -> None:
        with self._lock:
            if len(self._listed_elsewhere) < MAX_LISTED_ELSEWHERE:
                self._listed_elsewhere.setdefault((tenant_id, alert_id), set()).add(incident_id)

    # -- handed between processes (the log tables' worker keeps this index for a while) ------

    def listed_elsewhere(self) -> list[tuple[str, str, str]]:
        """The alerts remembered as listed under another incident: (tenant, alert, incident)."""
        with self._lock:
            return [
                (tenant_id, alert_id, incident_id)
                for (tenant_id, alert_id), incidents in self._listed_elsewhere.items()
                for incident_id in sorted(incidents)
            ]

    def remember_listed(self, triples: Iterable[tuple[str, str, str]]) -> None:
        """Remember what another process's index found (``listed_elsewhere``)."""
        for tenant_id, alert_id, incident_id in triples:
            self._remember_listed(tenant_id, alert_id, incident_id)


# -- computing rows ---------------------------------------------------------------------------


def compute_rows(
    conn: Connection,
    keys: Sequence[Key],
    snapshot: int,
    listed_elsewhere: Callable[[str, str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """The ``queue_entry`` rows of these incidents as the hub holds them now (incidents not
    stored yet are left out), each stamped with ``snapshot``. Alerts are read from their
    summary columns: their payloads, mostly evidence, are never parsed here."""
    if not keys:
        return []
    i, a = s.incident, s.alert
    parts: dict[Key, _Parts] = {}
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, incident_id in keys:
        by_tenant.setdefault(tenant_id, []).append(incident_id)
    for tenant_id, ids in by_tenant.items():
        for part in chunks(ids):
            query = select(
                i.c.id,
                i.c.version,
                i.c.display_name,
                i.c.severity,
                i.c.status,
                i.c.assigned_to,
                i.c.classification,
                i.c.determination,
                i.c.created_date_time,
                i.c.merged_into,
                s.current_payload(i),
            ).where(i.c.tenant_id == tenant_id, i.c.id.in_(part))
            for row in conn.execute(query):
                parts[(tenant_id, row[0])] = _Parts(_Incident(*row), [], [], [])
    if not parts:
        return []
    found = sorted(parts)
    members = _members(
        conn,
        found,
        a.c.service_source,
        a.c.title,
        a.c.categories,
        a.c.first_activity,
        a.c.last_activity,
        a.c.evidence_terms,
    )
    alert_owner: dict[tuple[str, str], list[Key]] = {}
    for key, rows in members.items():
        tenant_id, incident_id = key
        alerts = parts[key].alerts
        # By position (`_members`' own five columns, then those asked for above): a
        # SQLAlchemy 2.1 `Row`'s attributes cost about 0.6 µs each, an index 0.04.
        for member in rows:
            alert_id, owner = member[0], member[1]
            alerts.append(_Alert(*member[5:]))
            alert_owner.setdefault((tenant_id, alert_id), []).append(key)
            if listed_elsewhere is not None and owner != incident_id:
                listed_elsewhere(tenant_id, alert_id, incident_id)
    _gather_texts(conn, parts, alert_owner)
    return [_row(key, parts[key], snapshot) for key in found]


def _gather_texts(
    conn: Connection, parts: Mapping[Key, _Parts], alert_owner: Mapping[tuple[str, str], list[Key]]
) -> None:
    """Evidence names and keys, and comments, for ``search`` (two queries per chunk)."""
    e, c = s.evidence, s.comment
    alerts_by_tenant: dict[str, list[str]] = {}
    for tenant_id, alert_id in alert_owner:
        alerts_by_tenant.setdefault(tenant_id, []).append(alert_id)
    for tenant_id, alert_ids in alerts_by_tenant.items():
        for part in chunks(sorted(alert_ids)):
            query = select(e.c.alert_id, e.c.entity_key, e.c.display_name).where(
                e.c.tenant_id == tenant_id, e.c.alert_id.in_(part)
            )
            for alert_id, entity_key, display_name in conn.execute(query):
                for key in alert_owner[(tenant_id, alert_id)]:
                    texts = parts[key].texts
                    if display_name:
                        texts.append(display_name)
                    if entity_key and entity_key != display_name:
                        texts.append(entity_key)
            notes = select(c.c.entity_id, c.c.comment).where(
                c.c.tenant_id == tenant_id, c.c.entity_type == "alert", c.c.entity_id.in_(part)
            )
            for alert_id, text in conn.execute(notes):
                if text:
                    for key in alert_owner[(tenant_id, alert_id)]:
                        parts[key].comments.append(text)
    incidents_by_tenant: dict[str, list[str]] = {}
    for tenant_id, incident_id in parts:
        incidents_by_tenant.setdefault(tenant_id, []).append(incident_id)
    for tenant_id, ids in incidents_by_tenant.items():
        for part in chunks(ids):
            query = select(c.c.entity_id, c.c.comment).where(
                c.c.tenant_id == tenant_id, c.c.entity_type == "incident", c.c.entity_id.in_(part)
            )
            for incident_id, text in conn.execute(query):
                if text:
                    parts[(tenant_id, incident_id)].comments.append(text)


#: The longest text kept in a column the queue's indexes hold: PostgreSQL refuses an index
#: entry over about 2,700 bytes, and one incident's oversized owner (Graph's text, not
#: typed in the console, which caps an owner at 320 characters) failed every batch after
#: it. A user principal name is at most 113 characters; Graph's enums are shorter still.
INDEXED_TEXT: Final = 512


def _indexed(value: str | None) -> str | None:
    return value[:INDEXED_TEXT] if value is not None and len(value) > INDEXED_TEXT else value


def _row(key: Key, part: _Parts, snapshot: int) -> dict[str, Any]:
    incident = part.incident
    payload = jsontext.loads(incident.payload)
    tags = [str(t) for t in payload.get("customTags") or () if t]
    products: dict[str, None] = {}
    tactics: dict[str, None] = {}
    first: int | None = None
    last: int | None = None
    titles: list[str] = []
    terms: list[str] = []
    for source, title, categories, first_activity, last_activity, evidence_terms in part.alerts:
        if source:
            products.setdefault(source, None)
        for found in _tactics(categories) if categories else ():
            tactics.setdefault(found, None)
        first = _earliest(first, first_activity)
        last = _latest(last, last_activity)
        if title:
            titles.append(title)
        if evidence_terms:
            terms.extend(evidence_terms.split("\n"))
    return {
        "tenant_id": key[0],
        "incident_id": key[1],
        "seq": snapshot,
        "display_name": incident.display_name,
        "severity": _indexed(incident.severity),
        "severity_rank": severity_rank(incident.severity),
        "status": _indexed(incident.status),
        "assigned_to": _indexed(incident.assigned_to),
        "classification": incident.classification,
        "determination": incident.determination,
        "tags": encode_list(dict.fromkeys(tags)),
        "products": encode_list(products),
        "tactics": encode_list(tactics),
        "alert_count": len(part.alerts),
        "created_at": incident.created_date_time,
        "last_update_at": datetime_from_ticks(incident.version),
        "first_activity_at": datetime_from_ticks(first) if first is not None else None,
        "last_activity_at": datetime_from_ticks(last) if last is not None else None,
        "merged_into": incident.merged_into,
        # Evidence last: an incident with many entities fills the cap, and what is cut
        # must not be its comments.
        "search": search_text(
            [incident.display_name or "", *titles, *part.comments, *part.texts, *terms]
        ),
    }


def _tactics(categories: str) -> tuple[str, ...]:
    """The MITRE tactics an alert's ``categories`` (its column: a JSON list) name, in order.
    Alerts share a few lists: each is parsed once, not once per alert of every batch (a
    long one, which may be hostile, is not kept: see `vocab.CACHED_TEXT`)."""
    if len(categories) <= 4 * CACHED_TEXT:
        return _cached_tactics(categories)
    return _tactics_of(categories)


def _tactics_of(categories: str) -> tuple[str, ...]:
    return tuple(found for category in jsontext.loads(categories) if (found := tactic(category)))


_cached_tactics = lru_cache(maxsize=4096)(_tactics_of)


def search_text(texts: Iterable[str]) -> str:
    """Distinct texts, lower-cased, one per line, cut at ``SEARCH_CAP`` characters."""
    # The same evidence names and terms come with many alerts (three texts in four, on a
    # 2,000-incident backfill): each distinct one is cleaned once.
    distinct = dict.fromkeys(map(str.lower, map(str.strip, dict.fromkeys(texts))))
    distinct.pop("", None)
    joined = "\n".join(distinct)
    if len(joined) < SEARCH_CAP:  # most incidents: no text is cut
        return joined
    out: list[str] = []
    size = 0
    for text in distinct:
        out.append(text)
        size += len(text) + 1
        if size >= SEARCH_CAP:
            break
    return "\n".join(out)[:SEARCH_CAP]


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


# -- writing rows -----------------------------------------------------------------------------


def upsert_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace rows, but never replace one read at a later position (``seq``)."""
    if not rows:
        return
    q = s.queue_entry
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):  # portable fallback: read, then write
        _upsert_portable(conn, rows)
        return
    insert = _insert(dialect, q)
    columns = [c.name for c in q.columns if c.name not in ("tenant_id", "incident_id")]
    statement = insert.on_conflict_do_update(
        index_elements=[q.c.tenant_id, q.c.incident_id],
        set_={name: insert.excluded[name] for name in columns},
        where=q.c.seq <= insert.excluded.seq,
    )
    for part in chunks(rows, 200):
        conn.execute(statement, list(part))


def _insert(dialect: str, table: Table) -> SqliteInsert | PostgresqlInsert:
    """The dialect's INSERT with ON CONFLICT, its module imported only then: PostgreSQL's
    takes 0.05 s (its catalog), for nothing in a process on a SQLite hub (the log tables'
    worker, which keeps this index during a backlog)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def _upsert_portable(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    q = s.queue_entry
    for row in rows:
        stored = conn.execute(
            select(q.c.seq).where(
                and_(q.c.tenant_id == row["tenant_id"], q.c.incident_id == row["incident_id"])
            )
        ).scalar_one_or_none()
        if stored is not None and stored > row["seq"]:
            continue
        if stored is not None:
            conn.execute(
                delete(q).where(
                    q.c.tenant_id == row["tenant_id"], q.c.incident_id == row["incident_id"]
                )
            )
        conn.execute(q.insert(), row)


__all__ = [
    "QUEUE_DESTINATION",
    "SEARCH_CAP",
    "SEVERITY_RANK",
    "UNKNOWN_RANK",
    "QueueIndex",
    "compute_rows",
    "decode_list",
    "encode_list",
    "is_newer_severity",
    "like_escape",
    "member_pattern",
    "search_text",
    "severity_rank",
    "upsert_rows",
]
