"""Containment: a bad record costs only itself, a failing stream only itself, and a throttled
stream waits as long as Graph asked — across cycles, visibly in its state."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from fakegraph import T0, FakeGraph, FakePage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truth import assert_hub_matches_truth

from xdrsync.config import load_config
from xdrsync.console.health import health, metrics_text
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import EmulatorSettings
from xdrsync.errors import ThrottledError
from xdrsync.hub import Hub, configured_url, default_url
from xdrsync.hub.payload import ticks_from_datetime, version_text
from xdrsync.jsontext import UnreadableItem
from xdrsync.sync.engine import TenantSource, sync_tenant
from xdrsync.sync.inbound import ALERTS, INCIDENTS, InboundSettings, sync_stream
from xdrsync.sync.listing import PageQuery
from xdrsync.sync.window import StreamState
from xdrsync.views import state_tables

TENANT = "t"
SETTINGS = InboundSettings(initial_backfill=timedelta(days=1))


class OnePage:
    """A source whose every listing is one page of the given items."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def incidents_page(self, query: PageQuery) -> FakePage:
        return FakePage(tuple(self.items), T0, count=len(self.items) if query.count else None)

    def alerts_page(self, query: PageQuery) -> FakePage:
        return FakePage((), T0)


odd_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\udc00", "\ud800", "\x00", "\x1b", "\u202e", "😀"]),
    ),
    max_size=12,
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), odd_text
)
nested = st.one_of(json_leaf, st.lists(json_leaf, max_size=3))
json_value = st.one_of(nested, st.dictionaries(odd_text, nested, max_size=3))


T = "#microsoft.graph.security."
#: Evidence items of known types whose values do not fit the type (Graph changed a
#: property's shape): kept whole, they cost neither their alert nor its incident.
misfit_evidence = st.sampled_from(
    [
        {"@odata.type": T + "processEvidence", "processId": "abc"},
        {"@odata.type": T + "deviceEvidence", "createdDateTime": "yesterday"},
        {"@odata.type": T + "ipEvidence", "ipAddress": 12},
        {"@odata.type": T + "userEvidence", "userAccount": "alice", "roles": "compromised"},
    ]
)
fitting_evidence = st.sampled_from(
    [
        {"@odata.type": T + "ipEvidence", "ipAddress": "10.0.0.1"},
        {"@odata.type": T + "deviceEvidence", "mdeDeviceId": "d1", "roles": ["compromised"]},
    ]
)


@st.composite
def alert_of(draw: st.DrawFn, n: int, stamp: str) -> dict[str, Any]:
    return {
        "id": f"a{n}",
        "incidentId": f"v{n}",
        "lastUpdateDateTime": stamp,
        "severity": "high",
        "evidence": draw(st.lists(misfit_evidence | fitting_evidence, max_size=3)),
    }


@st.composite
def valid_incident(draw: st.DrawFn, n: int) -> dict[str, Any]:
    stamp = version_text(ticks_from_datetime(T0 - timedelta(minutes=draw(st.integers(1, 600)))))
    return {
        "id": f"v{n}",
        "displayName": draw(odd_text),
        "status": draw(st.sampled_from(["active", "Resolved", "inProgress", "somethingNew"])),
        "severity": "low",
        "createdDateTime": stamp,
        "lastUpdateDateTime": stamp,
        "customTags": draw(st.lists(odd_text, max_size=3)),
        "comments": [],
        "unknownProperty": draw(json_value),
        "alerts": draw(st.lists(alert_of(n, stamp), max_size=1)),
    }


invalid_item = st.one_of(
    st.sampled_from(["nope", 42, None, [1, 2], True, 1.5]),
    st.builds(lambda t: {"displayName": t}, odd_text),  # no id
    st.builds(lambda v: {"id": [v], "lastUpdateDateTime": "2026-01-01T00:00:00Z"}, st.integers()),
    st.builds(lambda t: UnreadableItem(raw='{"id":"deep","x":' + t, reason="too deep"), odd_text),
    # An alert's own field malformed, or an evidence item that is not an object: the incident
    # goes to quarantine (only what does not fit inside an evidence item is kept).
    st.builds(
        lambda e: {"id": "bad-alert", "alerts": [{"id": "x", "severity": 5, "evidence": [e]}]},
        misfit_evidence,
    ),
    st.builds(
        lambda e: {"id": "bad-item", "alerts": [{"id": "y", "evidence": [e, 7]}]}, misfit_evidence
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), valid=st.integers(0, 8), invalid=st.lists(invalid_item, max_size=6))
def test_every_valid_record_of_a_mixed_page_is_committed_and_every_invalid_one_quarantined(
    data: st.DataObject, valid: int, invalid: list[Any]
) -> None:
    good = sorted(
        (data.draw(valid_incident(n)) for n in range(valid)), key=lambda r: r["lastUpdateDateTime"]
    )
    page: list[Any] = list(good)
    for item in invalid:  # anywhere among the good ones, which stay oldest first
        page.insert(data.draw(st.integers(0, len(page))), item)
    with tempfile.TemporaryDirectory() as folder, Hub.open(default_url(Path(folder))) as hub:
        report = sync_stream(
            hub, OnePage(page), tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS,
            clock=lambda: T0,
        )  # fmt: skip
        for record in good:
            stored = hub.get_incident(TENANT, record["id"])
            assert stored is not None
            assert stored.to_graph() == record  # exactly as served, odd text included
            for alert in record["alerts"]:  # misfit evidence included
                kept = hub.get_alert(TENANT, alert["id"])
                assert kept is not None and kept.to_graph() == alert
        assert report.quarantined == len(invalid)
        assert sum(hub.quarantine_counts().values()) == len(
            {repr(item) if not isinstance(item, UnreadableItem) else item.raw for item in invalid}
        )
        assert StreamState.from_doc(hub.get_state(TENANT, INCIDENTS)).watermark is not None


class Exploding(FakeGraph):
    """Alerts raise an error no one foresaw; incidents are fine."""

    def alerts_page(self, query: PageQuery) -> FakePage:
        raise KeyError("an unforeseen bug")


def test_an_unexpected_error_in_one_stream_is_recorded_and_stops_nothing_else(hub: Hub) -> None:
    now = datetime.now(UTC)
    graph, other = Exploding(now=now), FakeGraph(now=now)
    graph.put(INCIDENTS, "i1", now - timedelta(hours=1))
    other.put(INCIDENTS, "j1", now - timedelta(hours=1))
    report = sync_tenant(hub, TenantSource("a", TENANT, graph), SETTINGS)
    assert report.errors.keys() == {ALERTS}
    assert "KeyError" in report.errors[ALERTS]
    assert hub.get_incident(TENANT, "i1") is not None  # the other stream went on
    rows = {row.stream: row for row in hub.list_states()}
    assert rows[ALERTS].last_error is not None and "unforeseen" in rows[ALERTS].last_error
    second = sync_tenant(hub, TenantSource("b", "u", other), SETTINGS)
    assert second.ok  # another tenant is untouched
    assert hub.get_incident("u", "j1") is not None


class Throttled(FakeGraph):
    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.calls = 0

    def incidents_page(self, query: PageQuery) -> FakePage:
        self.calls += 1
        if self.retry_after:
            raise ThrottledError("429 Too Many Requests", retry_after=self.retry_after)
        return super().incidents_page(query)


def test_a_long_retry_after_is_honoured_across_cycles_and_shown(hub: Hub) -> None:
    graph = Throttled(retry_after=600)
    graph.now = datetime.now(UTC)
    graph.put(INCIDENTS, "i1", graph.now - timedelta(hours=1))
    report = sync_tenant(hub, TenantSource("a", TENANT, graph), SETTINGS)
    assert INCIDENTS in report.errors and "not read before" in report.errors[INCIDENTS]
    state = StreamState.from_doc(hub.get_state(TENANT, INCIDENTS))
    assert state.retry_at is not None
    assert timedelta(seconds=590) < state.retry_at - datetime.now(UTC) <= timedelta(seconds=600)
    shown = " ".join(
        str(cell)
        for table in state_tables(hub, {}, [])
        for column in table.columns
        for cell in column.cells
    )
    assert f"waiting until {state.retry_at:%H:%M:%S} UTC" in shown  # `state show` says so
    calls = graph.calls
    waiting = sync_stream(hub, graph, tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS)
    assert graph.calls == calls  # not asked again before the time Graph gave
    assert waiting.waiting_until == state.retry_at
    graph.retry_after = 0
    later = state.retry_at + timedelta(seconds=1)
    graph.now = later
    sync_stream(
        hub, graph, tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS, clock=lambda: later
    )
    assert hub.get_incident(TENANT, "i1") is not None
    assert StreamState.from_doc(hub.get_state(TENANT, INCIDENTS)).retry_at is None


@pytest.mark.parametrize("asked", [1e300, float("inf"), 10 * 365 * 86400.0])
def test_an_absurd_retry_after_parks_a_stream_for_an_hour_at_most(hub: Hub, asked: float) -> None:
    graph = Throttled(retry_after=asked)
    graph.now = datetime.now(UTC)
    report = sync_tenant(hub, TenantSource("a", TENANT, graph), SETTINGS)
    assert INCIDENTS in report.errors and ALERTS not in report.errors  # the other stream ran
    state = StreamState.from_doc(hub.get_state(TENANT, INCIDENTS))
    assert state.retry_at is not None
    assert state.retry_at - datetime.now(UTC) <= timedelta(hours=1)


MISFITS = [
    {"@odata.type": T + "processEvidence", "processId": "abc", "processCommandLine": "x.exe"},
    {"@odata.type": T + "deviceEvidence", "createdDateTime": "yesterday", "hostName": "pc9"},
    {"@odata.type": T + "ipEvidence", "ipAddress": 12},
]


def misfit_incident(
    make_env: Any, folder: Path, misfits: list[dict[str, Any]], *, updated: str | None = None
) -> tuple[EmulatorSettings, dict[str, Any], int]:
    """Emulator settings that serve (``--load``) one incident whose first alert holds, after
    its own evidence, ``misfits``; that incident as served, and how many items fit.
    ``updated``: the incident's and that alert's ``lastUpdateDateTime`` instead of theirs."""
    base = settings_for(seed=5, incidents=1)
    incident = json.loads(json.dumps(make_env(base).truth()[0]))
    alert = incident["alerts"][0]
    fitting = len(alert["evidence"])
    alert["evidence"] = [*alert["evidence"], *misfits]
    if updated is not None:
        incident["lastUpdateDateTime"] = alert["lastUpdateDateTime"] = updated
    path = folder / "misfit.json"
    path.write_text(json.dumps([incident]))
    return replace(base, load_file=path), incident, fitting


def test_an_alert_whose_evidence_does_not_fit_its_type_is_synced_shown_and_warned_of_once(
    make_env: Any, tmp_path: Path
) -> None:
    """End to end: Defender (the emulator replaying a file) serves an incident whose alert
    holds evidence items whose values do not fit their types. `sync --once` (in process)
    stores the incident and its alert exactly as served, quarantines nothing, the log tables
    show its SecurityIncident, SecurityAlert and AlertEvidence rows (each misfit of its own
    kind, whole in AdditionalFields), and the log says so once per problem, not per cycle."""
    served, incident, fitting = misfit_incident(make_env, tmp_path, MISFITS)
    alert = incident["alerts"][0]
    env = make_env(served)
    tenant = env.config.tenants[0].tenant_id
    with structlog.testing.capture_logs() as events:
        reports = [*env.cycle(), *env.cycle()]  # the second re-reads it (lookback)
    assert all(r.ok for r in reports), [r.errors for r in reports]
    assert [s.quarantined for r in reports for s in r.streams] == [0, 0, 0, 0]
    assert env.hub.quarantine_counts() == {}
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    stored = env.hub.get_alert(tenant, alert["id"])
    assert stored is not None and stored.to_graph() == alert
    items = env.hub.list_evidence(tenant, incident["id"])
    kinds = [row.kind for row in items if row.alert_id == alert["id"]]
    assert kinds[fitting:] == ["process", "device", "ip"]  # the hub's evidence rows too

    warned = [e for e in events if str(e["event"]).startswith("an evidence item does not fit")]
    assert sorted(e["evidence_type"] for e in warned) == sorted(m["@odata.type"] for m in MISFITS)
    for event in warned:  # once each, across both streams and both cycles
        assert (event["tenant"], event["alert"], event["log_level"]) == (
            tenant,
            alert["id"],
            "warning",
        )
    assert {e["reason"] for e in warned} == {
        "ProcessEvidence: field 'processId': expected an integer, got a string",
        "DeviceEvidence: field 'createdDateTime': expected an ISO 8601 date-time string",
        "IpEvidence: field 'ipAddress': expected a string, got a number",
    }

    logs = env.workspace.logs
    shown = logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident['id']}' | count"
    ).rows
    assert shown[0][0] >= 1
    alerts = logs.query(f"SecurityAlert | where SystemAlertId == '{alert['id']}' | count").rows
    assert alerts[0][0] >= 1
    rows = logs.query(
        f"AlertEvidence | where AlertId == '{alert['id']}' "
        "| project AdditionalFields, EntityType, ProcessCommandLine, DeviceName, RemoteIP"
    ).rows
    assert len(rows) == len(alert["evidence"])  # one row per item, none twice
    shown_items = {
        json.dumps(json.loads(f) if isinstance(f, str) else f, sort_keys=True): tuple(rest)
        for f, *rest in rows
    }
    assert [shown_items[json.dumps(m, sort_keys=True)] for m in MISFITS] == [
        ("Process", "x.exe", "", ""),
        ("Machine", "", "pc9", ""),
        ("Ip", "", "", ""),  # 12 is no address: it is in AdditionalFields only
    ]


def test_state_show_counts_an_unparsed_evidence_item_once_with_its_reason(
    make_env: Any, tmp_path: Path
) -> None:
    """End to end, as an operator sees it: Defender serves an alert with one evidence item
    whose value does not fit its type; `xdrsync sync --once` runs twice (the second re-reads
    it in the lookback, from both streams). `state show` says 1 such item (not 2, nor one
    per stream), the reason, the alert, and that nothing is lost; the health JSON and the
    metrics say the same."""
    # Updated within the lookback, which every cycle reads whole: both runs read it from
    # both streams.
    updated = version_text(ticks_from_datetime(datetime.now(UTC) - timedelta(minutes=10)))
    served, incident, _ = misfit_incident(make_env, tmp_path, MISFITS[:1], updated=updated)
    alert_id = incident["alerts"][0]["id"]
    env = make_env(served)
    tenant = served.tenants[0]
    lookback = {"lookback_seconds": 3600, "fresh_lookback_seconds": 3600}
    config = write_client_config(
        tmp_path / "cli", env.server.base_url, served.tenants, sync=lookback
    )

    def xdrsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xdrsync", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "COLUMNS": "400"},
        )

    for run in range(2):
        done = xdrsync("sync", "--once")
        assert done.returncode == 0, done.stderr
        read = re.findall(r"/(incidents|alerts): (\d+) read", done.stdout)
        assert sorted(read) == [("alerts", "1"), ("incidents", "1")], (run, done.stdout)
    shown = xdrsync("state", "show")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    reason = "ProcessEvidence: field 'processId': expected an integer, got a string"
    said = re.findall(r"(\S+)/(\w+): (\d+) evidence item\(s\) did not fit their type", out)
    assert said == [(tenant.name, "incidents", "1")], out
    assert f"in alert {alert_id}: {reason}" in out
    assert "Nothing is lost" in out and "AdditionalFields" in out
    header = next(line for line in out.splitlines() if "quarantined" in line)
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    figures = {
        cells[1]: dict(zip(columns, cells, strict=True))
        for line in out.splitlines()
        if line.startswith("│") and tenant.name in line
        for cells in [[cell.strip() for cell in line.strip("│").split("│")]]
        if cells[1] in ("incidents", "alerts")
    }
    assert figures["incidents"]["unparsed evidence"] == "1", out
    assert figures["alerts"]["unparsed evidence"] == "0", out
    assert figures["incidents"]["quarantined"] == "0", out

    loaded = load_config(config)
    with Hub.open(configured_url(loaded.workspace)) as hub:
        figures = health(hub, loaded, [tenant.tenant_id])
        metrics = metrics_text(hub, loaded, [tenant.tenant_id]).decode()
    streams = {s["stream"]: s["unparsedEvidence"] for s in figures["tenants"][0]["streams"]}
    assert (streams["incidents"]["items"], streams["incidents"]["reason"]) == (1, reason)
    assert streams["incidents"]["alertId"] == alert_id
    assert streams["alerts"]["items"] == 0
    assert (
        f'xdrsync_stream_unparsed_evidence_items_total{{stream="incidents",tenant="{tenant.name}"}}'
        " 1.0"
    ) in metrics
