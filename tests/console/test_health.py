"""Health as data (``GET /api/v1/health``), Prometheus metrics and ``/healthz``, over a
workspace synced from the Defender emulator (two tenants), with quarantined records, edits in
the outbox and a failing stream added by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from xdrsync.config import Config, load_config
from xdrsync.console.health import health, healthz, metrics_text
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.graph import calls
from xdrsync.hub import Hub, InboundBatch, Quarantined, configured_url
from xdrsync.hub.records import NewEdit, Settlement

RAW = '{"id": "q-1", "lastUpdateDateTime": "not a time", "note": "kept as served"}'


@dataclass
class Synced:
    config: Config
    hub: Hub
    first: str  # tenant ids
    second: str


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    folder = tmp_path_factory.mktemp("health")
    settings = settings_for(seed=23, incidents=15, tenants=2)
    with EmulatorServer(settings) as server:
        path = write_client_config(folder, server.base_url, settings.tenants, workspace="ws")
        done = subprocess.run(
            [sys.executable, "-m", "xdrsync", "sync", "--once", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    config = load_config(path)
    hub = Hub.open(configured_url(config.workspace))
    first, second = (t.tenant_id for t in config.tenants)
    hub.commit_batch(
        InboundBatch(
            tenant_id=first,
            stream="incidents",
            quarantined=[Quarantined(raw=RAW, reason="lastUpdateDateTime: not a time")],
        )
    )
    hub.record_stream_error(second, "alerts", "Graph answered 503 three times")
    hub.enqueue_edits(
        [
            NewEdit(first, "incident", "1", "status", "active", "resolved", "ana", "console"),
            NewEdit(first, "incident", "2", "assignedTo", None, "bo@x", "ana", "console"),
        ]
    )
    (refused,) = hub.edits(tenant_id=first, entity=("incident", "2"))
    hub.settle_edits([Settlement(refused, "failed", "refused", {"reason": "Graph said 400"})])
    try:
        yield Synced(config, hub, first, second)
    finally:
        hub.close()


def _tenant(report: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    (found,) = [t for t in report["tenants"] if t["tenantId"] == tenant_id]
    assert isinstance(found, dict)
    return found


def test_health_has_the_figures_of_state_show_per_tenant_and_stream(synced: Synced) -> None:
    now = datetime.now(UTC)
    report = health(synced.hub, synced.config, [synced.first, synced.second], now=now)
    json.dumps(report)  # plain JSON
    first = _tenant(report, synced.first)
    streams = {s["stream"]: s for s in first["streams"]}
    assert set(streams) == {"incidents", "alerts"}
    incidents = streams["incidents"]
    assert incidents["outcome"] == "ok" and incidents["lastError"] is None
    watermark = datetime.fromisoformat(incidents["watermark"])
    assert incidents["lagSeconds"] == pytest.approx((now - watermark).total_seconds())
    assert datetime.fromisoformat(incidents["lastCommitAt"]) <= now
    assert incidents["quarantined"] == 1 and streams["alerts"]["quarantined"] == 0
    records = first["records"]
    assert isinstance(records, dict) and records["incidents"] == 15 and records["alerts"] > 0
    quarantine = first["quarantine"]
    assert isinstance(quarantine, dict) and quarantine["count"] == 1
    (shown,) = quarantine["newest"]
    assert shown["raw"] == RAW and shown["reason"].startswith("lastUpdateDateTime")
    writes = first["writeBacks"]
    assert isinstance(writes, dict)
    assert writes["pending"] == 1 and writes["failed"] == 1
    assert writes["counts"]["confirmed"] == 0
    assert writes["lastFailure"]["outcome"] == "Graph said 400"
    second = _tenant(report, synced.second)
    failing = {s["stream"]: s for s in second["streams"]}["alerts"]
    assert failing["outcome"] == "error"
    assert failing["lastError"] == "Graph answered 503 three times"
    assert failing["lastErrorAt"] is not None and failing["failingSince"] is not None
    assert second["writeBacks"]["pending"] == 0
    destinations = {d["name"]: d for d in report["destinations"]}
    tables = destinations["tables"]
    assert tables["type"] == "log tables" and tables["behind"] == 0 and tables["error"] is None
    assert tables["deliveredAt"] is not None and tables["deadLetters"] == 0


def test_health_is_scoped_to_the_tenants_passed(synced: Synced) -> None:
    report = health(synced.hub, synced.config, [synced.second])
    text = json.dumps(report)
    names = {t.tenant_id: t.name for t in synced.config.tenants}
    assert synced.first not in text and f'"{names[synced.first]}"' not in text
    assert RAW not in text and "Graph said 400" not in text
    assert [t["tenantId"] for t in report["tenants"]] == [synced.second]
    assert health(synced.hub, synced.config, [])["tenants"] == []
    assert health(synced.hub, synced.config, ["not-configured"])["tenants"] == []


def test_graph_calls_are_counted_per_tenant_in_process(synced: Synced) -> None:
    calls.reset()
    calls.record(synced.first, "requests", 3)
    calls.record(synced.first, "throttled")
    report = health(synced.hub, synced.config, [synced.first, synced.second])
    graph = _tenant(report, synced.first)["graph"]
    assert isinstance(graph, dict)
    assert graph["requests"] == 3 and graph["throttled"] == 1 and graph["retries"] == 0
    assert graph["lastThrottledAt"] is not None and graph["countingSince"] is not None
    other = _tenant(report, synced.second)["graph"]
    assert isinstance(other, dict) and other["requests"] == 0 and other["lastThrottledAt"] is None


def test_a_graph_client_feeds_the_counters(tmp_path: Path) -> None:
    from xdrsync.connectors import probe_alerts, probe_incidents
    from xdrsync.graph.security import DefenderApi

    calls.reset()
    settings = settings_for(seed=5, incidents=3)
    with EmulatorServer(settings) as server:
        config = Config.for_emulator(server.base_url, settings.tenants, workspace_path=tmp_path)
        (tenant,) = config.tenants
        api = DefenderApi.connect(tenant, config.sync)
        try:
            probe_incidents(api)
            probe_alerts(api)
        finally:
            api.close()
    counted = calls.tenant_calls(tenant.tenant_id)
    assert counted.get("requests") == 2 and counted.get("failures") == 0


def test_metrics_are_prometheus_text_from_a_fresh_registry(synced: Synced) -> None:
    calls.reset()
    calls.record(synced.first, "requests", 7)
    before = set(REGISTRY._names_to_collectors)
    both = [synced.first, synced.second]
    text = metrics_text(synced.hub, synced.config, both).decode()
    assert set(REGISTRY._names_to_collectors) == before
    again = metrics_text(synced.hub, synced.config, both).decode()  # no duplicate registration
    assert [f.name for f in text_string_to_metric_families(again)] == [
        f.name for f in text_string_to_metric_families(text)
    ]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    names = {t.tenant_id: t.name for t in synced.config.tenants}
    one, two = names[synced.first], names[synced.second]

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("xdrsync_stream_watermark_lag_seconds", tenant=one, stream="incidents") >= 0
    assert value("xdrsync_stream_quarantined_records", tenant=one, stream="incidents") == 1
    assert value("xdrsync_stream_last_commit_timestamp_seconds", tenant=one, stream="incidents")
    assert value("xdrsync_stream_error", tenant=one, stream="incidents") == 0
    assert value("xdrsync_stream_error", tenant=two, stream="alerts") == 1
    assert value("xdrsync_outbox_edits", tenant=one, state="pending") == 1
    assert value("xdrsync_outbox_edits", tenant=one, state="failed") == 1
    assert value("xdrsync_records", tenant=one, kind="incidents") == 15
    assert value("xdrsync_records", tenant=two, kind="alerts") > 0
    assert value("xdrsync_graph_calls_total", tenant=one, event="requests") == 7
    assert value("xdrsync_destination_behind_changes", destination="tables", type="log tables") == 0
    assert value("xdrsync_destination_dead_letters", destination="tables", type="log tables") == 0
    assert RAW not in text


def test_every_graph_event_is_a_series_from_the_first_scrape(synced: Synced) -> None:
    """A counter that appears at its first increment loses that increment to ``rate()`` and
    ``increase()``: every event is there at 0 from the start, named alike (camelCase)."""

    def events(text: str, tenant: str) -> dict[str, float]:
        return {
            sample.labels["event"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "xdrsync_graph_calls_total" and sample.labels["tenant"] == tenant
        }

    calls.reset()
    names = {t.tenant_id: t.name for t in synced.config.tenants}
    first = events(
        metrics_text(synced.hub, synced.config, [synced.first]).decode(), names[synced.first]
    )
    assert {"requests", "expandFallbacks", "unreadableIncidents"} <= set(first)
    assert set(first.values()) == {0}
    calls.record(synced.first, "unreadable_incidents")
    then = events(
        metrics_text(synced.hub, synced.config, [synced.first]).decode(), names[synced.first]
    )
    assert set(then) == set(first) and then["unreadableIncidents"] == 1


def test_metrics_are_scoped_to_the_tenants_passed(synced: Synced) -> None:
    names = {t.tenant_id: t.name for t in synced.config.tenants}
    text = metrics_text(synced.hub, synced.config, [synced.second]).decode()
    labelled = {
        sample.labels["tenant"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "tenant" in sample.labels
    }
    assert labelled == {names[synced.second]}
    assert names[synced.first] not in text and synced.first not in text
    assert "xdrsync_destination_behind_changes" in text  # the log tables serve every tenant
    nothing = metrics_text(synced.hub, synced.config, []).decode()
    assert "tenant=" not in nothing


def test_healthz_answers_while_the_hub_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    hub = Hub.open(f"sqlite:///{tmp_path / 'ws' / 'hub.sqlite3'}")
    try:
        assert healthz(hub) == (True, {"hub": "ok"})

        def broken() -> object:
            raise OperationalError("SELECT 1", {}, Exception("disk I/O error\nsecond line"))

        monkeypatch.setattr(hub, "reading", broken)
        ok, detail = healthz(hub)
    finally:
        hub.close()
    assert not ok and detail == {"hub": "unavailable", "error": "Exception: disk I/O error"}


NEW_TENANT = "00000000-0000-0000-0000-0000000000ee"  # a tenant never synced


def test_lag_is_none_while_backfilling_and_waiting_is_told(synced: Synced) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    tenant = synced.config.tenants[0].tenant_id
    stored = synced.hub.get_state(tenant, "alerts")
    synced.hub.record_stream_error(tenant, "alerts", "429: wait", retry_at=later)
    try:
        report = health(synced.hub, synced.config, [tenant])
        alerts = {s["stream"]: s for s in report["tenants"][0]["streams"]}["alerts"]
        assert alerts["outcome"] == "error" and alerts["retryAt"] is not None
    finally:
        assert stored is not None
        synced.hub.save_state(tenant, "alerts", stored)  # clears the error again
    fresh = Config.for_emulator(
        "http://127.0.0.1:9", [("new", NEW_TENANT, "c-new", "s")], workspace_path="/nonexistent"
    )
    report = health(synced.hub, fresh, [NEW_TENANT])
    (streams,) = [t["streams"] for t in report["tenants"]]
    assert all(s["outcome"] == "never" and s["lagSeconds"] is None for s in streams)
    assert all(s["backfilling"] for s in streams)
