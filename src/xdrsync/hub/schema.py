"""The hub's tables as SQLAlchemy Core objects (created by the alembic migrations, not here).

Portable to SQLite and PostgreSQL: no dialect-specific types; JSON is stored as text (the hub
never queries inside it), versions as integer 100-ns ticks so that ordering is exact, and
timestamps through ``UtcDateTime`` so both engines hand back aware UTC datetimes.
A test checks that these definitions and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    Label,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    func,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

SEQ_COUNTER: Final = "change_seq"
#: The id of a table that grows with time: 64-bit (SQLite's row ids are; PostgreSQL's
#: ``integer`` would stop at 2^31 and fail every commit after; migration 0007).
_GROWING_ID: Final = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite itself keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the hub stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()


def _id(name: str, **kw: Any) -> Column[str]:
    # Unbounded VARCHAR: a Graph id longer than some guessed limit must never wedge a stream.
    return Column(name, String(), **kw)


def _empty_payload() -> Column[str]:
    """The current tables' old ``payload`` column, always "" since migration 0008 (the JSON is
    the history's, ``current_payload``). It stays because SQLite before 3.35 drops a column
    only by copying the table (alembic's batch mode does so on any version), and dropping the
    old ``alert`` would empty ``evidence`` through its foreign key. Under another key, so
    that code reading ``.c.payload`` of ``incident`` or ``alert`` fails at once."""
    return Column("payload", Text, nullable=False, key="empty_payload")


incident = Table(
    "incident",
    metadata,
    _id("tenant_id", primary_key=True),
    _id("id", primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("display_name", Text),
    Column("status", String()),
    Column("severity", String()),
    Column("classification", String()),
    Column("determination", String()),
    Column("assigned_to", String()),
    Column("created_date_time", UtcDateTime()),
    _id("merged_into"),
    _empty_payload(),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_incident_queue", "tenant_id", "version"),
    Index("ix_incident_version", "version"),
    Index("ix_incident_status", "tenant_id", "status", "version"),
    Index("ix_incident_merged_into", "tenant_id", "merged_into"),
)

alert = Table(
    "alert",
    metadata,
    _id("tenant_id", primary_key=True),
    _id("id", primary_key=True),
    _id("incident_id"),
    Column("version", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("status", String()),
    Column("severity", String()),
    Column("service_source", String()),
    Column("title", Text),
    Column("created_date_time", UtcDateTime()),
    _empty_payload(),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # For the incident queue (migration 0005; ``payload.alert_summary``): a JSON list of the
    # alert's categories, and its first and last activity as ticks.
    Column("categories", Text),
    Column("first_activity", BigInteger),
    Column("last_activity", BigInteger),
    # For the queue's search (migration 0010; ``terms.evidence_terms``): the identifying
    # attributes of the alert's evidence, one per line.
    Column("evidence_terms", Text),
    Index("ix_alert_incident", "tenant_id", "incident_id"),
)


incident_version = Table(
    "incident_version",
    metadata,
    _id("tenant_id", primary_key=True),
    _id("incident_id", primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("content_hash", String(64), primary_key=True),
    Column("seq", BigInteger),
    Column("alert_ids", Text),  # JSON list the version named, NULL when read without alerts
    Column("payload", Text, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_incident_version_seq", "seq"),
)

alert_version = Table(
    "alert_version",
    metadata,
    _id("tenant_id", primary_key=True),
    _id("alert_id", primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("content_hash", String(64), primary_key=True),
    Column("seq", BigInteger),
    _id("incident_id"),
    Column("payload", Text, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_alert_version_seq", "seq"),
)


def history_of(table: Table) -> tuple[Table, str]:
    """The history of ``incident`` or ``alert``, and its column that holds the record's id."""
    if table is incident:
        return incident_version, "incident_id"
    if table is alert:
        return alert_version, "alert_id"
    raise ValueError(f"{table.name} keeps no history")


def current_payload(table: Table) -> Label[str]:
    """The stored JSON of each row of ``incident`` or ``alert``, as a column named ``payload``
    for any statement over that table.

    Each JSON is stored once, in the history: the current row names its version (version and
    content hash), and that version's row, written in the same commit, holds the payload.
    A copy in the current tables as well had doubled the largest writes of every commit
    (migration 0008; their emptied column is ``_empty_payload``).
    """
    history, key = history_of(table)
    return (
        select(history.c.payload)
        .where(
            history.c.tenant_id == table.c.tenant_id,
            history.c[key] == table.c.id,
            history.c.version == table.c.version,
            history.c.content_hash == table.c.content_hash,
        )
        .scalar_subquery()
        .label("payload")
    )


evidence = Table(
    "evidence",
    metadata,
    _id("tenant_id", primary_key=True),
    _id("alert_id", primary_key=True),
    Column("ordinal", Integer, primary_key=True, autoincrement=False),
    _id("incident_id"),
    Column("odata_type", String()),
    Column("kind", String()),
    Column("entity_kind", String()),
    Column("entity_key", Text),
    Column("display_name", Text),
    # The item's JSON is in its alert's payload (``current_payload``; migration 0006).
    ForeignKeyConstraint(
        ["tenant_id", "alert_id"],
        ["alert.tenant_id", "alert.id"],
        name="fk_evidence_alert",
        ondelete="CASCADE",
    ),
    Index("ix_evidence_incident", "tenant_id", "incident_id"),
)
#: How much of an entity key the index holds (a URL's key is the URL, and PostgreSQL refuses
#: an index entry over about 2,700 bytes; migration 0007). A lookup compares this prefix too
#: (``entity_key_prefix``), so that both databases use the index.
ENTITY_KEY_INDEXED: Final = 200
Index(
    "ix_evidence_entity",
    evidence.c.tenant_id,
    evidence.c.entity_kind,
    func.substr(evidence.c.entity_key, 1, ENTITY_KEY_INDEXED),
)


def entity_key_prefix(key: str) -> ColumnElement[bool]:
    """The indexed condition that holds wherever ``evidence.entity_key == key`` does."""
    return func.substr(evidence.c.entity_key, 1, ENTITY_KEY_INDEXED) == key[:ENTITY_KEY_INDEXED]


#: The SQL function behind ``Lowered`` on SQLite: Python's ``str.lower``, registered on every
#: connection (``database``) under a name of its own, so SQLite's ``lower()`` stays as built.
SQLITE_LOWER: Final = "xdrsync_lower"


def python_lower(text: str | None) -> str | None:
    """``SQLITE_LOWER``: every letter lowered, as Python does (NULL stays NULL)."""
    return text.lower() if isinstance(text, str) else text


#: The dialect attribute naming the collation PostgreSQL's ``lower()`` folds with, when the
#: database's own folds ASCII letters only (set at the first connection:
#: ``database._fold_collation``).
FOLD_COLLATION: Final = "xdrsync_fold_collation"


class Lowered(FunctionElement[str]):
    """Text lowered on every letter, on both databases. SQLite's own ``lower()`` folds ASCII
    letters only (``SÉBASTIEN`` gives ``sÉbastien``), and so does PostgreSQL's in a database
    whose LC_CTYPE is C: on SQLite this is ``SQLITE_LOWER``, on PostgreSQL ``lower()``, in a
    collation that folds every letter when the database's own does not. Lower both sides of
    a comparison with it, so that each database compares a name and a search folded
    alike."""

    type = Text()
    name = "lowered"
    inherit_cache = True


@compiles(Lowered)
def _lowered(element: Lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(Lowered, "postgresql")
def _lowered_postgresql(element: Lowered, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    collation = getattr(compiler.dialect, FOLD_COLLATION, None)
    return f'lower({text} COLLATE "{collation}")' if collation else f"lower({text})"


@compiles(Lowered, "sqlite")
def _lowered_sqlite(element: Lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(element.clauses, **kw)})"


comment = Table(
    "comment",
    metadata,
    _id("tenant_id", primary_key=True),
    Column("entity_type", String(16), primary_key=True),
    _id("entity_id", primary_key=True),
    Column("comment_key", String(64), primary_key=True),
    _id("incident_id"),
    Column("created_date_time", UtcDateTime()),
    Column("created_by", Text),
    Column("comment", Text),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Index("ix_comment_incident", "tenant_id", "incident_id"),
)

change_log = Table(
    "change_log",
    metadata,
    # Not autoincrement: seq comes from the counter row, in commit order (see apply.py).
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    _id("tenant_id", nullable=False),
    Column("entity_type", String(16), nullable=False),
    _id("entity_id", nullable=False),
    _id("incident_id"),
    Column("version", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    # Who made the change, when the version is the echo of a workspace edit (see ``written``):
    # destinations show it as ``ModifiedBy`` instead of the app identity Defender recorded.
    Column("modified_by", Text),
)

counter = Table(
    "counter",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    _id("tenant_id", primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("doc", Text),
    Column("row_version", Integer, nullable=False),
    Column("updated_at", UtcDateTime()),
    Column("last_commit_at", UtcDateTime()),
    Column("last_error", Text),
    Column("last_error_at", UtcDateTime()),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", _GROWING_ID, primary_key=True, autoincrement=True),
    _id("tenant_id", nullable=False),
    Column("stream", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Index("ix_quarantine_stream", "tenant_id", "stream"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", _GROWING_ID, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    _id("tenant_id", nullable=False),
    Column("stream", String(64)),
    Column("entity_type", String(16), nullable=False),
    _id("entity_id"),
    Column("decision", String(32), nullable=False),
    Column("old_version", String(40)),
    Column("new_version", String(40)),
    Column("seq", BigInteger),
    Column("detail", Text),
    Index("ix_audit_entity", "tenant_id", "entity_type", "entity_id"),
)

cursor = Table(
    "cursor",
    metadata,
    # One row per destination: its acknowledged position in the change sequence and how its
    # deliveries are going (the last error stays until a delivery succeeds).
    Column("name", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime()),
    Column("error", Text),
    Column("failing_since", UtcDateTime()),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    # A change a destination rejected for good (its reason); the cursor moved past it. One
    # row per destination and change: rejected again (after a replay), its reason and time.
    Column("id", _GROWING_ID, primary_key=True, autoincrement=True),
    Column("destination", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    _id("tenant_id", nullable=False),
    Column("entity_type", String(16), nullable=False),
    _id("entity_id", nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_dead_letter_destination", "destination", "seq", unique=True),
)

remote_copy = Table(
    "remote_copy",
    metadata,
    # A record as xdrsync last wrote or read it in a destination (e.g. a Sentinel incident):
    # its etag and properties. The next write starts from it instead of a read, and reading
    # the destination back tells its users' edits from our own writes by it.
    Column("destination", String(200), primary_key=True),
    _id("name", primary_key=True),
    _id("tenant_id", nullable=False),
    _id("entity_id", nullable=False),
    Column("etag", Text, nullable=False),
    Column("properties", Text, nullable=False),  # JSON
    # JSON list: names of what xdrsync wrote under it (a Sentinel incident's comments).
    Column("children", Text, nullable=False),
    # JSON: properties being written (saved before the write, cleared after it), so a crash
    # in between never makes our own write look like someone else's edit, nor theirs ours.
    Column("pending", Text),
    Column("at", UtcDateTime(), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    # Two-way sync: one row per edit of one field (or one comment), written in the same
    # transaction as the workspace's own change and pushed to Defender by the pusher.
    Column("id", _GROWING_ID, primary_key=True, autoincrement=True),
    _id("tenant_id", nullable=False),
    Column("entity_type", String(16), nullable=False),
    _id("entity_id", nullable=False),
    Column("field", String(32), nullable=False),
    Column("seen", Text),  # JSON: the value the user saw when editing
    Column("wanted", Text, nullable=False),  # JSON: the new value (tags: adds and removes)
    Column("author", Text, nullable=False),
    Column("origin", String(64), nullable=False),  # cli, api, console, destination:NAME
    Column("created_at", UtcDateTime(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    Column("sent_at", UtcDateTime()),  # first write attempt: a comment is looked for after it
    Column("done_at", UtcDateTime()),
    Column("outcome", Text),  # Defender's answer, the policy's decision, the error
    Column("theirs", Text),  # JSON: Defender's value when the edit was last merged
    Column("written_version", BigInteger),  # Defender's version that carries our write
    _id("comment_key"),  # the comment Defender made of ours
    # Tries in a row Defender answered 409 (the pusher gives up after a few): a count, not
    # a number read back from the outcome's text, which is a message for people.
    Column("conflicts", Integer, nullable=False, server_default="0"),
    Index("ix_outbox_state", "state", "next_attempt_at"),
    Index("ix_outbox_entity", "tenant_id", "entity_type", "entity_id"),
)

written = Table(
    "written",
    metadata,
    # The versions Defender made of our own writes: when the inbound stream reads one back it
    # is recognised as ours (echo), by the exact version, never by a marker in the data.
    _id("tenant_id", primary_key=True),
    Column("entity_type", String(16), primary_key=True),
    _id("entity_id", primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("author", Text, nullable=False),
    Column("origin", String(64), nullable=False),
    Column("fields", Text, nullable=False),  # JSON: the values we wrote
    Column("at", UtcDateTime(), nullable=False),
)

# -- the console (migration 0004) ------------------------------------------------------------

console_user = Table(
    "console_user",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),  # argon2id, with its parameters
    Column("role", String(16), nullable=False),  # reader, responder, admin
    Column("email", Text),  # the address incidents are assigned to ("assign to me")
    # JSON list of tenant names as granted; before 0014 the scope itself, now only for a
    # downgrade and for resolving a scope that 0014 found (``scope`` NULL) at the first start.
    Column("tenants", Text, nullable=False),
    # The scope (0014): JSON list of {"id": tenant id, "name": its name when granted}; [] =
    # every tenant. NULL: granted by name before 0014, not yet resolved (no tenant meanwhile).
    Column("scope", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
)

api_token = Table(
    "api_token",
    metadata,
    # A personal token for scripts: only its sha256 is kept (the token is 256 random bits).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_name", String(64), nullable=False),
    Column("label", Text, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # shown in lists, to tell tokens apart
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)

console_session = Table(
    "console_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie's value
    Column("user_name", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Index("ix_console_session_user", "user_name"),
)

queue_entry = Table(
    "queue_entry",
    metadata,
    # The incident queue's index: one row per incident, kept by the console's destination
    # (console/index.py) from the change sequence, so the queue filters and sorts on indexed
    # columns. Lists are stored as "|a|b|" so that one LIKE finds a member.
    _id("tenant_id", primary_key=True),
    _id("incident_id", primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("display_name", Text),
    Column("severity", String()),
    Column("severity_rank", Integer, nullable=False),
    Column("status", String()),
    Column("assigned_to", String()),
    Column("classification", String()),
    Column("determination", String()),
    Column("tags", Text, nullable=False),
    Column("products", Text, nullable=False),
    Column("tactics", Text, nullable=False),
    Column("alert_count", Integer, nullable=False),
    Column("created_at", UtcDateTime()),
    Column("last_update_at", UtcDateTime(), nullable=False),
    Column("first_activity_at", UtcDateTime()),
    Column("last_activity_at", UtcDateTime()),
    _id("merged_into"),
    Column("search", Text, nullable=False),  # lower case: title, entities, comments
    Index("ix_queue_update", "last_update_at", "tenant_id", "incident_id"),
    Index("ix_queue_tenant", "tenant_id", "last_update_at"),
    Index("ix_queue_status", "status", "last_update_at"),
    Index("ix_queue_severity", "severity_rank", "last_update_at"),
    Index("ix_queue_owner", "assigned_to", "last_update_at"),
    Index("ix_queue_alert_count", "alert_count", "last_update_at"),
    Index("ix_queue_created_at", "created_at", "last_update_at"),
    Index("ix_queue_first_activity_at", "first_activity_at", "last_update_at"),
    Index("ix_queue_last_activity_at", "last_activity_at", "last_update_at"),
    # Covers the queue's counts by severity and status (no table lookups).
    Index("ix_queue_counts", "severity", "status", "tenant_id", "last_update_at"),
)
