"""How the sync is doing, as data: ``GET /api/v1/health``, ``/metrics`` and ``/healthz``.

The same figures ``xdrsync state show`` prints (``views.state_tables``), read from the hub
alone, plus this process's Graph call counters (``graph.calls``): per tenant and stream the
watermark, lag, last commit and last error; per tenant Graph calls and throttling,
quarantined records, edits on their way to Defender (the outbox) and stored totals; and the
destinations.

Every configured tenant is there from the start, synced or not. A stream no read of which
ever succeeded is ``neverSynced``. A tenant none of whose streams has read anything
``NEVER_SYNCED_GRACE`` after this process started (a hung or throttled tenant may record
nothing for minutes) has them in ``error``, never ``ok``. ``/healthz`` says only whether the
service and its hub answer (anyone who reaches the port may ask): tenants are watched
through the metrics.

Quarantined records are shown with their raw payload exactly as stored: it is the element of
a Graph answer that could not be parsed (Defender's data, never our credentials), so nothing
is redacted from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from xdrsync.config import Config
from xdrsync.destinations.status import DestinationStatus, destination_statuses
from xdrsync.graph import calls
from xdrsync.hub import Hub
from xdrsync.hub.records import OutboxRow, StreamStateRow
from xdrsync.hub.unparsed import UnparsedTally
from xdrsync.logs import clean, scrub
from xdrsync.twoway.access import STREAM as TWO_WAY
from xdrsync.twoway.access import read_only_reasons, recorded_roles

#: The inbound streams every tenant has (``sync.inbound.STREAMS``, not imported: that would
#: load the sync machinery into a process that only reads).
INBOUND_STREAMS: Final = ("incidents", "alerts")
#: Every state an edit in the outbox can be in (``hub.records.OutboxState``).
EDIT_STATES: Final = ("pending", "confirmed", "failed", "conflict", "overridden", "replaced")
#: How many quarantined records ``health`` shows per tenant (the newest).
QUARANTINE_SHOWN: Final = 5
#: How long after this process started a tenant may have no successful read before its
#: streams are reported in error (a first read takes seconds; a hung one, minutes).
NEVER_SYNCED_GRACE: Final = timedelta(minutes=5)

_GRAPH_NAMES: Final = {
    "requests": "requests",
    "retries": "retries",
    "throttled": "throttled",
    "failures": "failures",
    "token_refreshes": "tokenRefreshes",
    "expand_fallbacks": "expandFallbacks",
    "fallback_alert_reads": "fallbackAlertReads",
    "whole_alert_reads": "wholeAlertReads",
    "unreadable_incidents": "unreadableIncidents",
}


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the figures, once, for both the JSON and the metrics ----------------------------------


def _stream(row: StreamStateRow | None, stream: str, now: datetime) -> dict[str, Any]:
    """One stream's figures; ``row`` None: the stream never ran."""
    doc = (row.doc if row is not None else None) or {}
    watermark = _parse(doc.get("watermark"))
    retry_at = _parse(doc.get("retry_at"))
    last_commit = _aware(row.last_commit_at) if row is not None else None
    last_error = row.last_error if row is not None else None
    last_error_at = _aware(row.last_error_at) if row is not None else None
    waiting = retry_at is not None and retry_at > now
    never = last_commit is None and watermark is None  # no read of it ever succeeded
    if last_error:
        outcome = "error"
    elif waiting:
        outcome = "waiting"
    elif last_commit is None:
        outcome = "never"
    else:
        outcome = "ok"
    cycles = doc.get("cycles")
    return {
        "stream": stream,
        "watermark": _iso(watermark),
        # Seconds between the watermark and now; None while the first backfill runs.
        "lagSeconds": max((now - watermark).total_seconds(), 0.0) if watermark else None,
        "backfilling": watermark is None,
        "lastCommitAt": _iso(last_commit),
        "lastSuccessAt": _iso(_parse(doc.get("last_success"))),  # a whole listing read
        "cycles": cycles if isinstance(cycles, int) and not isinstance(cycles, bool) else 0,
        "outcome": outcome,
        "lastError": last_error,
        "lastErrorAt": _iso(last_error_at),
        # A successful commit clears the error, so a stream in error has been failing since
        # its last commit (None: it never committed).
        "failingSince": _iso(last_commit) if last_error else None,
        "retryAt": _iso(retry_at) if waiting else None,
        "quarantined": row.quarantined if row is not None else 0,
        "unparsedEvidence": _unparsed(doc),
        "neverSynced": never,
    }


def _unparsed(doc: dict[str, Any]) -> dict[str, Any]:
    """Evidence items of stored alert versions kept unparsed (``hub.unparsed``), the latest."""
    tally = UnparsedTally.from_doc(doc)
    return {
        "items": tally.items,
        "lastSeenAt": _iso(tally.last_seen),
        "reason": tally.reason or None,
        "evidenceType": tally.evidence_type or None,
        "alertId": tally.alert_id or None,
    }


def _streams(
    rows: Iterable[StreamStateRow], tenant_id: str, now: datetime, started: datetime
) -> list[dict[str, Any]]:
    """The tenant's streams; while none ever read successfully, ``NEVER_SYNCED_GRACE`` after
    ``started``, those without an error of their own are in error for it."""
    mine = {r.stream: r for r in rows if r.tenant_id == tenant_id and r.stream != TWO_WAY}
    names = [*INBOUND_STREAMS, *sorted(s for s in mine if s not in INBOUND_STREAMS)]
    streams = [_stream(mine.get(name), name, now) for name in names]
    if all(s["neverSynced"] for s in streams) and now - started >= NEVER_SYNCED_GRACE:
        minutes = (now - started).total_seconds() / 60
        for stream in streams:
            if stream["outcome"] == "never":
                stream["outcome"] = "error"
                stream["lastError"] = (
                    f"never synced: no read of Graph succeeded in the {minutes:.0f} min "
                    "since the service started"
                )
                stream["failingSince"] = _iso(started)
    return streams


def _graph(tenant_id: str) -> dict[str, Any]:
    counted = calls.tenant_calls(tenant_id)
    # Every event from the start, at 0 until counted: a metric series that appeared at its
    # first increment would lose that increment to Prometheus' rate() and increase().
    figures: dict[str, Any] = {
        _GRAPH_NAMES.get(name, name): value
        for name, value in sorted((dict.fromkeys(_GRAPH_NAMES, 0) | counted.counts).items())
    }
    figures["lastThrottledAt"] = _iso(counted.last_throttled_at)
    figures["countingSince"] = _iso(calls.started_at())
    return figures


def _edit(row: OutboxRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "entityType": row.entity_type,
        "entityId": row.entity_id,
        "field": row.field,
        "author": row.author,
        "createdAt": _iso(row.created_at),
        "doneAt": _iso(row.done_at),
        "attempts": row.attempts,
        "outcome": row.outcome,
    }


def _write_backs(
    hub: Hub,
    tenant_id: str,
    name: str,
    counts: dict[tuple[str, str], int],
    roles: frozenset[str] | None,
    enabled: bool,
) -> dict[str, Any]:
    refused = read_only_reasons(name, enabled, roles)
    failed = hub.edits(tenant_id=tenant_id, states=["failed"], limit=1)  # the newest
    if not enabled:
        writes = "disabled"
    elif not roles:
        writes = "not checked yet"
    else:
        writes = "read-only" if refused else "allowed"
    return {
        "counts": {state: counts.get((tenant_id, state), 0) for state in EDIT_STATES},
        "pending": counts.get((tenant_id, "pending"), 0),
        "failed": counts.get((tenant_id, "failed"), 0),
        "writes": writes,
        "readOnlyReasons": list(dict.fromkeys(refused.values())),
        "grantedPermissions": sorted(roles) if roles else [],
        "lastFailure": _edit(failed[-1]) if failed else None,
    }


def _destination(status: DestinationStatus, complete: bool) -> dict[str, Any]:
    """A destination's health. ``complete``: the user sees every tenant it serves. Otherwise
    its error is not shown, and neither are the figures that count or date every tenant's
    changes (position, behind, dead letters, oldest pending, delivered): they would tell a
    scoped user how busy the other customers are (null: not shown)."""
    error = status.error
    if error and not complete:
        error = "failing (the error is shown to users who see every tenant it serves)"
    return {
        "name": status.name,
        "type": status.kind,
        "position": status.position if complete else None,
        "behind": status.behind if complete else None,
        "oldestPendingAt": _iso(status.oldest_pending_at) if complete else None,
        "deliveredAt": _iso(status.delivered_at) if complete else None,
        "error": error,
        "failingSince": _iso(status.failing_since),
        "deadLetters": status.dead_letters if complete else None,
    }


def _visible_destinations(
    hub: Hub, config: Config, tenant_ids: Sequence[str]
) -> Iterator[tuple[DestinationStatus, bool]]:
    """Each destination serving at least one of ``tenant_ids``, and whether its error and
    figures may be shown (it serves none but those). A cursor no longer configured, or the
    log tables (every tenant), count as serving every configured tenant."""
    scope = set(tenant_ids)
    everyone = {t.tenant_id for t in config.tenants}
    configured = {d.name: {t.tenant_id for t in config.tenants_of(d)} for d in config.destinations}
    for status in destination_statuses(hub, config):
        served = configured.get(status.name, everyone)
        if served & scope:
            yield status, served <= scope


def health(
    hub: Hub,
    config: Config,
    tenant_ids: Sequence[str],
    *,
    quarantine_shown: int = QUARANTINE_SHOWN,
    now: datetime | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """The JSON of ``GET /api/v1/health`` for the configured tenants among ``tenant_ids``
    (in config order); nothing about any other tenant is in it. ``started``: when the
    service started (default: when this process started counting Graph calls)."""
    now = now or datetime.now(UTC)
    started = started or calls.started_at()
    wanted = set(tenant_ids)
    tenants = [t for t in config.tenants if t.tenant_id in wanted]
    states = [r for r in hub.list_states() if r.tenant_id in wanted]
    roles = {r.tenant_id: recorded_roles(r.doc) for r in states if r.stream == TWO_WAY}
    outbox = hub.outbox_counts()
    stored = hub.counts()
    entries = []
    for tenant in tenants:
        tid = tenant.tenant_id
        quarantined = hub.list_quarantine(limit=quarantine_shown, tenant_id=tid)
        totals = stored.get(tid, {})
        streams = _streams(states, tid, now, started)
        entries.append(
            {
                "tenant": tenant.name,
                "tenantId": tid,
                "neverSynced": all(s["neverSynced"] for s in streams),
                "streams": streams,
                "graph": _graph(tid),
                "records": {
                    "incidents": totals.get("incidents", 0),
                    "alerts": totals.get("alerts", 0),
                },
                "quarantine": {
                    "count": totals.get("quarantined", 0),
                    "newest": [
                        {
                            "id": row.id,
                            "stream": row.stream,
                            "at": _iso(row.at),
                            "reason": row.reason,
                            "raw": row.raw,
                        }
                        for row in quarantined
                    ],
                },
                "writeBacks": _write_backs(
                    hub, tid, tenant.name, outbox, roles.get(tid), config.writes_to(tenant)
                ),
            }
        )
    return {
        "generatedAt": _iso(now),
        "tenants": entries,
        "destinations": [
            _destination(status, shown)
            for status, shown in _visible_destinations(hub, config, tenant_ids)
        ],
    }


# -- /metrics -------------------------------------------------------------------------------


class HealthCollector(Collector):
    """The health figures of the configured tenants among ``tenant_ids`` as Prometheus
    metrics, read from the hub at each scrape (what ``health`` shows for them, no more)."""

    def __init__(self, hub: Hub, config: Config, tenant_ids: Sequence[str]) -> None:
        self.hub = hub
        self.config = config
        self.tenant_ids = list(tenant_ids)

    def collect(self) -> Iterable[Metric]:
        now = datetime.now(UTC)
        figures = health(self.hub, self.config, self.tenant_ids, now=now)
        stream_labels = ["tenant", "stream"]
        lag = GaugeMetricFamily(
            "xdrsync_stream_watermark_lag_seconds",
            "Seconds between the stream's watermark and now (absent while backfilling).",
            labels=stream_labels,
        )
        quarantined = GaugeMetricFamily(
            "xdrsync_stream_quarantined_records",
            "Records of the stream kept in quarantine (could not be parsed).",
            labels=stream_labels,
        )
        unparsed = CounterMetricFamily(
            "xdrsync_stream_unparsed_evidence_items",
            "Evidence items of stored alert versions that did not fit their type (Graph "
            "changed a property's shape): kept whole and unparsed.",
            labels=stream_labels,
        )
        committed = GaugeMetricFamily(
            "xdrsync_stream_last_commit_timestamp_seconds",
            "When the stream last committed a batch (Unix time; absent if never).",
            labels=stream_labels,
        )
        failing = GaugeMetricFamily(
            "xdrsync_stream_error",
            "1 while the stream's last cycle failed, or its tenant has had no successful "
            f"read {NEVER_SYNCED_GRACE.total_seconds() / 60:.0f} min after the service "
            "started, else 0.",
            labels=stream_labels,
        )
        never = GaugeMetricFamily(
            "xdrsync_stream_never_synced",
            "1 while no read of the stream has ever succeeded (no watermark, no commit), else 0.",
            labels=stream_labels,
        )
        records = GaugeMetricFamily(
            "xdrsync_records",
            "Incidents and alerts stored in the workspace.",
            labels=["tenant", "kind"],
        )
        edits = GaugeMetricFamily(
            "xdrsync_outbox_edits",
            "Workspace edits to Defender by state.",
            labels=["tenant", "state"],
        )
        graph = CounterMetricFamily(
            "xdrsync_graph_calls",
            "Graph events counted by this process (requests, retries, throttled, failures...).",
            labels=["tenant", "event"],
        )
        for tenant in figures["tenants"]:
            name = tenant["tenant"]
            for stream in tenant["streams"]:
                labels = [name, stream["stream"]]
                if stream["lagSeconds"] is not None:
                    lag.add_metric(labels, stream["lagSeconds"])
                quarantined.add_metric(labels, stream["quarantined"])
                unparsed.add_metric(labels, stream["unparsedEvidence"]["items"])
                moment = _parse(stream["lastCommitAt"])
                if moment is not None:
                    committed.add_metric(labels, moment.timestamp())
                failing.add_metric(labels, 1.0 if stream["outcome"] == "error" else 0.0)
                never.add_metric(labels, 1.0 if stream["neverSynced"] else 0.0)
            for kind, count in tenant["records"].items():
                records.add_metric([name, kind], count)
            for state, count in tenant["writeBacks"]["counts"].items():
                edits.add_metric([name, state], count)
            for event, value in tenant["graph"].items():
                if isinstance(value, int):
                    graph.add_metric([name, event], value)
        behind = GaugeMetricFamily(
            "xdrsync_destination_behind_changes",
            "Changes in the hub the destination has not taken yet.",
            labels=["destination", "type"],
        )
        dead = GaugeMetricFamily(
            "xdrsync_destination_dead_letters",
            "Changes the destination refused for good.",
            labels=["destination", "type"],
        )
        for destination in figures["destinations"]:
            labels = [destination["name"], destination["type"]]
            if destination["behind"] is not None:  # None: it serves tenants the user may not see
                behind.add_metric(labels, destination["behind"])
                dead.add_metric(labels, destination["deadLetters"])
        yield from (lag, quarantined, unparsed, committed, failing, never, records, edits, graph)
        yield from (behind, dead)


def metrics_text(hub: Hub, config: Config, tenant_ids: Sequence[str]) -> bytes:
    """The Prometheus text exposition of the health of the configured tenants among
    ``tenant_ids`` (a fresh registry each time: never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(hub, config, tenant_ids))
    return generate_latest(registry)


# -- /healthz -------------------------------------------------------------------------------


def healthz(hub: Hub) -> tuple[bool, dict[str, Any]]:
    """Whether the hub answers a trivial query: ``(True, {"hub": "ok"})``, else
    ``(False, {"hub": "unavailable", "error": why})``, the reason on one line with secrets
    scrubbed. The caller adds the overall ``status``."""
    try:
        with hub.reading() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
    except Exception as problem:  # any failure is the answer, not a crash of the probe
        origin = getattr(problem, "orig", None) or problem
        first = (str(origin).splitlines() or [""])[0]
        reason = clean(scrub(f"{type(origin).__name__}: {first}"), limit=300)
        return False, {"hub": "unavailable", "error": reason}
    return True, {"hub": "ok"}


__all__ = [
    "EDIT_STATES",
    "INBOUND_STREAMS",
    "NEVER_SYNCED_GRACE",
    "QUARANTINE_SHOWN",
    "HealthCollector",
    "health",
    "healthz",
    "metrics_text",
]
