"""Health, as ``GET /api/v1/health`` and ``/metrics`` give it, for tenants that never synced
(hung or throttled from the start: nothing recorded for minutes) and for a tenant removed
from the config: every configured tenant is there, one that never read is not ``ok`` once the
grace has passed, and a removed one raises no lag alarm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from xdrsync.config import Config
from xdrsync.console.health import NEVER_SYNCED_GRACE, health, metrics_text
from xdrsync.graph import calls
from xdrsync.hub import Hub, InboundBatch

SYNCED = "00000000-0000-0000-0000-0000000000a1"
SICK = "00000000-0000-0000-0000-0000000000b2"  # never read: no state at all
HALF = "00000000-0000-0000-0000-0000000000c3"  # incidents backfilling, alerts not reached yet
GONE = "00000000-0000-0000-0000-0000000000d4"  # synced once, since removed from the config
CONFIG = Config.for_emulator(
    "http://127.0.0.1:9",
    [("synced", SYNCED, "c1", "s1"), ("sick", SICK, "c2", "s2"), ("half", HALF, "c3", "s3")],
    workspace_path="/nonexistent",
)
EVERY = [SYNCED, SICK, HALF, GONE]


def _commit(hub: Hub, tenant_id: str, stream: str, watermark: datetime | None) -> None:
    state = {"watermark": watermark.isoformat()} if watermark is not None else None
    hub.commit_batch(InboundBatch(tenant_id=tenant_id, stream=stream, state=state))


@pytest.fixture
def seeded(hub: Hub) -> Hub:
    now = datetime.now(UTC)
    for stream in ("incidents", "alerts"):
        _commit(hub, SYNCED, stream, now - timedelta(seconds=20))
        _commit(hub, GONE, stream, now - timedelta(days=3))
    _commit(hub, HALF, "incidents", None)  # a first page of its backfill
    return hub


def _streams(report: dict[str, object], tenant_id: str) -> dict[str, dict[str, object]]:
    tenants = report["tenants"]
    assert isinstance(tenants, list)
    (tenant,) = [t for t in tenants if t["tenantId"] == tenant_id]
    return {s["stream"]: s for s in tenant["streams"]}


def test_a_tenant_that_never_synced_is_not_ok_once_the_grace_has_passed(seeded: Hub) -> None:
    now = datetime.now(UTC)
    early = health(seeded, CONFIG, EVERY, now=now, started=now - timedelta(minutes=1))
    assert [t["tenant"] for t in early["tenants"]] == ["synced", "sick", "half"]
    assert [t["neverSynced"] for t in early["tenants"]] == [False, True, False]
    sick = _streams(early, SICK)
    assert {s["outcome"] for s in sick.values()} == {"never"}  # a first read takes a while
    assert all(s["neverSynced"] and s["lastError"] is None for s in sick.values())

    started = now - NEVER_SYNCED_GRACE - timedelta(seconds=1)
    late = health(seeded, CONFIG, EVERY, now=now, started=started)
    sick = _streams(late, SICK)
    for stream in sick.values():
        assert stream["outcome"] == "error"
        assert str(stream["lastError"]).startswith("never synced: no read of Graph succeeded")
        assert stream["failingSince"] == started.isoformat()
    assert {s["outcome"] for s in _streams(late, SYNCED).values()} == {"ok"}
    # A tenant that read something is not alarmed about a stream its backfill has not
    # reached yet (the alerts stream runs after the incidents backfill).
    half = _streams(late, HALF)
    assert half["incidents"]["neverSynced"] is False and half["incidents"]["backfilling"]
    assert half["alerts"]["neverSynced"] is True and half["alerts"]["outcome"] == "never"

    seeded.record_stream_error(SICK, "incidents", "ThrottledError: 429")
    told = _streams(health(seeded, CONFIG, EVERY, now=now, started=started), SICK)
    assert told["incidents"]["lastError"] == "ThrottledError: 429"  # its own error, kept


def _samples(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (sample.name, sample.labels.get("tenant", ""), sample.labels.get("stream", "")): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_tell_a_tenant_that_never_synced_and_leave_out_a_removed_one(
    seeded: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "started_at", lambda: datetime.now(UTC) - timedelta(minutes=1))
    fresh = _samples(metrics_text(seeded, CONFIG, EVERY).decode())
    for stream in ("incidents", "alerts"):
        assert fresh[("xdrsync_stream_never_synced", "sick", stream)] == 1
        assert fresh[("xdrsync_stream_never_synced", "synced", stream)] == 0
        assert fresh[("xdrsync_stream_error", "sick", stream)] == 0  # within the grace
        assert ("xdrsync_stream_watermark_lag_seconds", "sick", stream) not in fresh
    assert fresh[("xdrsync_stream_never_synced", "half", "incidents")] == 0

    monkeypatch.setattr(calls, "started_at", lambda: datetime.now(UTC) - timedelta(minutes=6))
    text = metrics_text(seeded, CONFIG, EVERY).decode()
    late = _samples(text)
    for stream in ("incidents", "alerts"):
        assert late[("xdrsync_stream_error", "sick", stream)] == 1
        assert late[("xdrsync_stream_error", "synced", stream)] == 0
    assert late[("xdrsync_stream_error", "half", "alerts")] == 0
    # The removed tenant's three-day-old watermark is no lag to alarm on.
    assert GONE not in text
    assert {k[1] for k in late if k[1]} == {"synced", "sick", "half"}


def test_a_scoped_user_sees_no_destination_figures_that_count_other_tenants(
    seeded: Hub,
) -> None:
    """A destination's position, backlog, dead letters and times count every tenant's
    changes: a user scoped to some tenants of a destination serving more would read from
    them how busy the other customers are. They see the destination, without those."""
    from consoledata import commit, incident_json

    commit(seeded, SICK, [incident_json(SICK, str(n)) for n in range(3)])

    def tables(tenant_ids: list[str]) -> dict[str, object]:
        found = health(seeded, CONFIG, tenant_ids)["destinations"]
        (table,) = [d for d in found if d["type"] == "log tables"]
        return table

    everyone = tables(EVERY)
    assert (everyone["position"], everyone["behind"], everyone["deadLetters"]) == (0, 3, 0)
    assert everyone["oldestPendingAt"] is not None
    scoped = tables([SYNCED])
    hidden = ("position", "behind", "deadLetters", "oldestPendingAt", "deliveredAt")
    assert {k: scoped[k] for k in hidden} == dict.fromkeys(hidden)
    name = "xdrsync_destination_behind_changes"
    assert f'{name}{{destination="tables"' in metrics_text(seeded, CONFIG, EVERY).decode()
    assert f"{name}{{" not in metrics_text(seeded, CONFIG, [SYNCED]).decode()
