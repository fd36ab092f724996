"""Inbound sync against the emulator: ground truth reached, ties, late updates, merges,
failing $expand, bad records, tenants side by side."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from truth import assert_hub_matches_truth

from xdrsync.config import SyncConfig
from xdrsync.emulator.activity import IncidentEdit, Merge, NewIncident
from xdrsync.emulator.faults import FaultSettings
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.stories import NEWER_EVIDENCE_TYPE
from xdrsync.emulator.tenants import EmulatorSettings, TenantSpec
from xdrsync.emulator.timefmt import graph_time
from xdrsync.sync.engine import SyncService
from xdrsync.workspace import inbound_settings


def test_first_cycle_backfills_everything_and_a_second_changes_nothing(make_env: Any) -> None:
    env = make_env(settings_for(seed=11, incidents=150))
    tenant = env.config.tenants[0].tenant_id
    (report,) = env.cycle()
    assert report.ok, report.errors
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    seq = env.hub.max_seq()
    (again,) = env.cycle()
    assert again.ok
    assert env.hub.max_seq() == seq  # a re-read changes nothing downstream
    counted = env.workspace.logs.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber | count"
    )
    assert counted.rows[0][0] == 150
    once = env.workspace.logs.query(
        "SecurityIncident | summarize n = count() by IncidentNumber | where n > 1 | count"
    )
    assert once.rows[0][0] == 0  # one row per version, none repeated


@pytest.mark.parametrize("order", ["by id", "new on each request"])
def test_ties_across_page_boundaries_lose_nothing(
    make_env: Any, tmp_path: Path, order: str
) -> None:
    # The order among equal stamps is unspecified: served in a new one on each request,
    # offset pages over the run overlap and skip (one pass read 42 of 48 before pooling).
    shuffle = FaultSettings(tie_shuffle_rate=1.0 if order != "by id" else 0.0)
    stamp = graph_time(datetime.now(UTC) - timedelta(seconds=30))
    base = settings_for(seed=5, incidents=1)
    env0 = make_env(base)
    template = env0.truth()[0]
    incidents = []
    for n in range(1, 138):
        incident = json.loads(json.dumps(template))
        incident["id"] = str(n)
        incident["lastUpdateDateTime"] = stamp
        for i, alert in enumerate(incident["alerts"]):
            alert["id"] = f"tie-{n}-{i}"
            alert["incidentId"] = str(n)
            alert["lastUpdateDateTime"] = stamp
        incidents.append(incident)
    path = tmp_path / "ties.json"
    path.write_text(json.dumps(incidents))
    env = make_env(replace(base, load_file=path, faults=shuffle))
    (report,) = env.cycle()
    assert report.ok
    assert_hub_matches_truth(env.hub, env.config.tenants[0].tenant_id, env.truth())
    assert len(env.hub.list_incidents(limit=1000)) == 137


@pytest.mark.parametrize("ignored", [1.0, 0.3])
def test_a_graph_that_ignores_orderby_is_read_in_windows_and_nothing_is_lost(
    make_env: Any, ignored: float
) -> None:
    """Microsoft documents no $orderby for the security lists (microsoft-apis.md §2.8): the
    emulator serves its default order to that share of listing requests. The sync notices
    the first page out of order, reads in closed windows from then on (remembered in the
    stream's state), and under live activity and shuffled ties ends with Defender's data."""
    faults = f"ignored_orderby_rate={ignored},tie_shuffle_rate=0.3"
    env = make_env(
        settings_for(seed=19, incidents=220, activity_per_minute=900, faults=faults),
        sync=SyncConfig(poll_interval_seconds=0.3, lookback_seconds=30, max_attempts=8),
    )
    tenant = env.config.tenants[0].tenant_id
    reports: list[Any] = []
    service = SyncService(
        env.hub,
        env.workspace.sources(),
        inbound_settings(env.config),
        poll_interval=0.3,
        on_report=reports.append,
    ).start()
    try:
        deadline = time.monotonic() + 60
        while len([r for r in reports if r.ok]) < 6:  # cycles under way while Defender changes
            assert time.monotonic() < deadline, [r.errors for r in reports]
            time.sleep(0.1)
    finally:
        service.stop()
    env.control("POST", "/pause")
    (report,) = env.cycle()
    assert report.ok, report.errors
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    states = {s.stream: s.doc or {} for s in env.hub.list_states() if s.tenant_id == tenant}
    assert states["incidents"].get("ordered") is False
    assert len(env.truth()) > 220  # Defender changed under the reads: new incidents came
    assert env.server.emulator.stats_snapshot()["faults"]["ignored_orderby"] > 0


@pytest.mark.parametrize("refused", [1.0, 0.3])
def test_a_graph_that_refuses_orderby_is_read_in_windows_and_nothing_is_lost(
    make_env: Any, refused: float
) -> None:
    """A service without ``$orderby`` may refuse it with OData's 400 ("Query option
    'OrderBy' is not allowed") rather than ignore it: both streams read in windows from
    then on, every cycle succeeds, and the hub ends with Defender's data."""
    env = make_env(settings_for(seed=19, incidents=150, faults=f"refused_orderby_rate={refused}"))
    tenant = env.config.tenants[0].tenant_id
    for _ in range(2):
        (report,) = env.cycle()
        assert report.ok, report.errors
        assert_hub_matches_truth(env.hub, tenant, env.truth())
    assert env.server.emulator.stats_snapshot()["faults"]["refused_orderby"] > 0
    if refused == 1.0:  # (at 0.3, the alerts stream's one page may have been served)
        states = {s.stream: s.doc or {} for s in env.hub.list_states() if s.tenant_id == tenant}
        assert states["incidents"].get("ordered") is False
        assert states["alerts"].get("ordered") is False


def test_enum_members_newer_than_unknown_future_value_arrive_as_they_are(
    make_env: Any, tmp_path: Path
) -> None:
    base = settings_for(seed=5, incidents=1)
    incident = json.loads(json.dumps(make_env(base).truth()[0]))
    incident["status"] = "awaitingAction"  # Defender Experts waiting on the customer
    incident["alerts"][0]["serviceSource"] = "microsoftSentinel"
    path = tmp_path / "newer.json"
    path.write_text(json.dumps([incident]))
    env = make_env(replace(base, load_file=path))
    (report,) = env.cycle()
    assert report.ok
    tenant = env.config.tenants[0].tenant_id
    assert_hub_matches_truth(env.hub, tenant, env.truth())  # not "unknownFutureValue"
    shown = env.workspace.logs.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | project Status"
    )
    assert [tuple(row) for row in shown.rows] == [("Active",)]  # not "New", as unknown


def test_evidence_of_a_type_no_client_knows_yet_is_kept_whole_and_shown(make_env: Any) -> None:
    """Graph keeps adding evidence types (microsoft-apis.md §2.6): with ``new_evidence_rate``
    the emulator's seeded alerts carry one of a type none of xdrsync's models know. Nothing
    is quarantined, the hub gives every alert back exactly, and each such item is an
    AlertEvidence row of its own kind with the item whole in AdditionalFields."""
    env = make_env(settings_for(seed=13, incidents=40, faults="new_evidence_rate=0.5"))
    tenant = env.config.tenants[0].tenant_id
    (report,) = env.cycle()
    assert report.ok, report.errors
    assert [s.quarantined for s in report.streams] == [0, 0]
    truth = env.truth()
    assert_hub_matches_truth(env.hub, tenant, truth)
    newer = {
        a["id"]: item
        for i in truth
        for a in i.get("alerts") or []
        for item in a["evidence"]
        if item["@odata.type"] == NEWER_EVIDENCE_TYPE
    }
    assert 0 < len(newer) < sum(len(i.get("alerts") or []) for i in truth)
    rows = env.workspace.logs.query(
        "AlertEvidence | where EntityType == 'AiModelDeployment' "
        "| project AlertId, AdditionalFields"
    )
    shown = {alert_id: fields for alert_id, fields in rows.rows}
    assert shown.keys() == newer.keys()
    for alert_id, fields in shown.items():
        assert (json.loads(fields) if isinstance(fields, str) else fields) == newer[alert_id]


def test_late_visible_updates_are_caught_by_the_lookback(make_env: Any) -> None:
    env = make_env(settings_for(seed=3, incidents=40, faults="late_seconds=2"))
    tenant = env.config.tenants[0].tenant_id
    env.cycle()
    target = env.truth()[0]["id"]
    env.control(
        "POST",
        f"/incidents/{target}",
        json={"status": "inProgress", "assignedTo": "late@contoso.com"},
    )
    time.sleep(0.5)
    env.cycle()  # the update is not listable yet; the watermark moves past it anyway
    stored = env.hub.get_incident(tenant, target)
    assert stored is not None and stored.assigned_to != "late@contoso.com"
    time.sleep(2.0)
    env.cycle()
    stored = env.hub.get_incident(tenant, target)
    assert stored is not None and stored.assigned_to == "late@contoso.com"
    assert_hub_matches_truth(env.hub, tenant, env.truth())


def test_a_comment_that_does_not_move_last_update_arrives_with_the_next_reconcile(
    make_env: Any,
) -> None:
    """Whether a comment moves its incident's lastUpdateDateTime is undocumented; with
    ``unbumped_comment_rate`` the emulator's do not. A listing from the watermark cannot see
    such a change, so the cycles after it miss it; the next reconcile re-reads the records
    updated within ``reconcile_days`` and brings it."""
    env = make_env(
        settings_for(seed=3, incidents=30, faults="unbumped_comment_rate=1"),
        sync=SyncConfig(
            poll_interval_seconds=0.5,
            lookback_seconds=60,
            reconcile_days=31,
            # The cycles before it take far less, even loaded; due by the server's one-second
            # Date, it is waited for with a margin over that second (and a loaded server's lag).
            reconcile_interval_seconds=12,
        ),
    )
    tenant = env.config.tenants[0].tenant_id
    began = time.monotonic()
    (first,) = env.cycle()
    assert first.ok, first.errors
    hour_ago = graph_time(datetime.now(UTC) - timedelta(hours=1))
    target = next(i for i in env.truth() if i["lastUpdateDateTime"] < hour_ago)
    env.control("POST", f"/incidents/{target['id']}", json={"comments": [{"comment": "quiet"}]})
    now = {i["id"]: i for i in env.truth()}[target["id"]]
    assert now["lastUpdateDateTime"] == target["lastUpdateDateTime"]  # the comment moved nothing
    env.cycle()  # within the reconcile interval: a listing from the watermark cannot see it
    assert "quiet" not in [c.comment for c in env.hub.list_comments(tenant, target["id"])]
    time.sleep(max(0.0, began + 14 - time.monotonic()))
    (reconciled,) = env.cycle()
    assert reconciled.ok, reconciled.errors
    assert "quiet" in [c.comment for c in env.hub.list_comments(tenant, target["id"])]
    assert_hub_matches_truth(env.hub, tenant, env.truth())


def test_merges_link_the_absorbed_incident_and_keep_its_comments(make_env: Any) -> None:
    env = make_env(settings_for(seed=9, incidents=30))
    tenant = env.config.tenants[0].tenant_id
    env.cycle()
    open_ids = [i["id"] for i in env.truth() if i["status"] in ("active", "inProgress")]
    source, target = open_ids[0], open_ids[1]
    store = env.server.emulator.store(tenant)
    store.add_incident_comment(source, "seen on the source before the merge", "amy@contoso.com")
    store.apply(Merge(source_id=source, target_id=target))
    env.cycle()
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    assert source in env.hub.get_merged_from(tenant, target)
    comments = [c.comment for c in env.hub.list_comments(tenant, target)]
    assert "seen on the source before the merge" in comments
    merged = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{source}' | summarize arg_max(TimeGenerated, *) by IncidentNumber | project Status, Labels"
    )
    assert merged.rows[0][0] == "Closed"


def test_failing_expand_falls_back_to_per_incident_alerts(make_env: Any) -> None:
    env = make_env(settings_for(seed=13, incidents=120, faults="expand_error_rate=0.2"))
    (report,) = env.cycle()
    assert report.ok, report.errors
    assert_hub_matches_truth(env.hub, env.config.tenants[0].tenant_id, env.truth())
    assert env.server.emulator.stats_snapshot()["faults"].get("expand", 0) >= 1


@pytest.mark.parametrize("faults", [None, "ignored_orderby_rate=1", "refused_orderby_rate=1"])
def test_an_incident_too_big_to_expand_is_read_whole_and_new_incidents_keep_coming(
    make_env: Any, faults: str | None
) -> None:
    """Graph's ``$expand=alerts`` fails for good on big incidents (microsoft-apis.md §0.4,
    §6), and the next links of an incident's alerts stop at ``$skip`` 500 (§2.8): an
    incident of 1,100 alerts must neither stop the incidents stream nor arrive with part of
    its alerts, whether Graph honours ``$orderby`` or not."""
    env = make_env(settings_for(seed=5, incidents=30, big_incident_alerts=1100, faults=faults))
    tenant = env.config.tenants[0].tenant_id
    (report,) = env.cycle()
    assert report.ok, report.errors
    big = max(env.truth(), key=lambda incident: len(incident["alerts"]))
    assert len(big["alerts"]) == 1100
    stored = env.hub.get_incident(tenant, big["id"])
    assert stored is not None
    assert {a["id"] for a in stored.to_graph()["alerts"]} == {a["id"] for a in big["alerts"]}
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    faults = env.server.emulator.stats_snapshot()["faults"]
    assert faults.get("expand_big_incident", 0) >= 1  # Graph's failure was met, not avoided

    def watermark() -> str:
        (state,) = [
            s for s in env.hub.list_states() if s.tenant_id == tenant and s.stream == "incidents"
        ]
        return str((state.doc or {})["watermark"])

    before = watermark()
    template = json.loads(json.dumps(min(env.truth(), key=lambda i: len(i["alerts"]))))
    for alert in template["alerts"]:
        alert["id"] += "-new"
    new_id = env.server.emulator.store(tenant).apply(NewIncident(template))
    time.sleep(1.1)  # past the Date of the first cycle's read, to the second
    (again,) = env.cycle()
    assert again.ok, again.errors
    assert env.hub.get_incident(tenant, new_id) is not None
    assert watermark() > before
    assert_hub_matches_truth(env.hub, tenant, env.truth())


@pytest.mark.parametrize("faults", [None, "ignored_orderby_rate=1"])
def test_resolving_an_incident_of_1100_alerts_stamps_them_alike_and_no_stream_stalls(
    make_env: Any, faults: str | None
) -> None:
    """Resolving an incident resolves its alerts with one ``lastUpdateDateTime`` (as the
    emulator does; whether Defender does is unverified): more records share that stamp than
    ``$skip`` reaches (§2.8). They are read whole, in parts, and both streams go on."""
    env = make_env(settings_for(seed=5, incidents=30, big_incident_alerts=1100, faults=faults))
    tenant = env.config.tenants[0].tenant_id
    (report,) = env.cycle()
    assert report.ok, report.errors
    store = env.server.emulator.store(tenant)
    big = max(env.truth(), key=lambda incident: len(incident["alerts"]))
    store.apply(IncidentEdit(big["id"], {"status": "resolved"}))
    resolved = next(i for i in env.truth() if i["id"] == big["id"])
    stamps = Counter(alert["lastUpdateDateTime"] for alert in resolved["alerts"])
    assert stamps.most_common(1)[0][1] > 600  # beyond $skip 500 and a page
    time.sleep(1.1)  # past the Date of the first cycle's read, to the second
    (again,) = env.cycle()
    assert again.ok, again.errors
    assert_hub_matches_truth(env.hub, tenant, env.truth())

    template = json.loads(json.dumps(min(env.truth(), key=lambda i: len(i["alerts"]))))
    for alert in template["alerts"]:
        alert["id"] += "-new"
    new_id = store.apply(NewIncident(template))
    time.sleep(1.1)
    (third,) = env.cycle()
    assert third.ok, third.errors
    stored = env.hub.get_incident(tenant, new_id)
    assert stored is not None  # the incidents and alerts after the tie still arrive
    assert {a["id"] for a in stored.to_graph()["alerts"]} == {a["id"] for a in template["alerts"]}
    assert_hub_matches_truth(env.hub, tenant, env.truth())


def test_a_bulk_close_beyond_skip_is_read_from_a_source_that_ignores_the_order(
    make_env: Any,
) -> None:
    """A source that ignores ``$orderby`` is read in closed windows; an analyst then closes
    hundreds of incidents at once, more within seconds than ``$skip`` reaches (§2.8). The
    smallest window holding them is read split at their stamps: the stream used to fail
    that window every cycle, and no incident after it ever arrived."""
    env = make_env(settings_for(seed=3, incidents=1000, faults="ignored_orderby_rate=1"))
    tenant = env.config.tenants[0].tenant_id
    (report,) = env.cycle()
    assert report.ok, report.errors
    (state,) = [
        s for s in env.hub.list_states() if s.tenant_id == tenant and s.stream == "incidents"
    ]
    assert (state.doc or {}).get("ordered") is False  # read in windows from now on
    store = env.server.emulator.store(tenant)
    closing = [i["id"] for i in env.truth() if i["status"] != "resolved"][:650]
    assert len(closing) == 650
    for incident_id in closing:
        store.apply(IncidentEdit(incident_id, {"status": "resolved"}))
    closed = [i for i in env.truth() if i["id"] in set(closing)]
    stamps = sorted(i["lastUpdateDateTime"] for i in closed)
    span = datetime.fromisoformat(stamps[-1][:26]) - datetime.fromisoformat(stamps[0][:26])
    assert span < timedelta(minutes=10)  # one smallest window holds them all
    time.sleep(1.1)  # past the Date of the first cycle's read, to the second
    (again,) = env.cycle()
    assert again.ok, again.errors
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    queries = env.server.emulator.stats_snapshot()
    assert queries["faults"]["ignored_orderby"] > 0


def test_malformed_records_are_quarantined_and_the_stream_goes_on(
    make_env: Any, tmp_path: Path
) -> None:
    base = settings_for(seed=21, incidents=12)
    good = make_env(base).truth()
    bad = json.loads(json.dumps(good[0]))
    bad["id"] = "999"
    bad["severity"] = 5
    for alert in bad["alerts"]:
        alert["id"] += "-bad"
        alert["incidentId"] = "999"
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([*good, bad]))
    env = make_env(replace(base, load_file=path))
    env.cycle()
    stored = {row.id for row in env.hub.list_incidents(limit=100)}
    assert stored == {i["id"] for i in good}
    quarantined = env.hub.list_quarantine()
    assert any("severity" in row.reason and '"999"' in row.raw for row in quarantined)
    states = {(s.tenant_id, s.stream): s for s in env.hub.list_states()}
    assert states[(env.config.tenants[0].tenant_id, "incidents")].quarantined >= 1


def test_tenants_sync_side_by_side_and_one_failing_does_not_stall_the_other(make_env: Any) -> None:
    settings = EmulatorSettings(
        tenants=(
            TenantSpec.derived(4, 0, incidents=60),
            TenantSpec.derived(4, 1, incidents=80, rate_limit_per_minute=30),
            TenantSpec.derived(4, 2, incidents=70),
        ),
        seed=4,
    )
    broken = settings.tenants[0]
    env = make_env(settings, secrets={broken.name: "wrong-secret-value"})
    reports: list[Any] = []
    done = threading.Event()

    def on_report(report: Any) -> None:
        reports.append(report)
        finished = {r.tenant for r in reports if r.ok}
        if {settings.tenants[1].name, settings.tenants[2].name} <= finished:
            done.set()

    service = SyncService(
        env.hub,
        env.workspace.sources(),
        inbound_settings(env.config),
        poll_interval=0.5,
        fanout=env.workspace.fanout(),
        on_report=on_report,
    ).start()
    try:
        assert done.wait(180), "the healthy and the throttled tenant did not finish a cycle"
    finally:
        service.stop()
    healthy = settings.tenants[2].tenant_id
    assert_hub_matches_truth(env.hub, healthy, env.truth(healthy))
    failed = [r for r in reports if r.tenant == broken.name]
    assert failed and all(not r.ok for r in failed)
    assert "wrong-secret-value" not in json.dumps([r.errors for r in failed])
    states = {(s.tenant_id, s.stream): s for s in env.hub.list_states()}
    assert states[(broken.tenant_id, "incidents")].last_error
    # The throttled tenant kept its own pace, and what it synced is exactly Defender's.
    throttled = [r for r in reports if r.tenant == settings.tenants[1].name]
    assert all("Config" not in " ".join(r.errors.values()) for r in throttled)
    slow = settings.tenants[1].tenant_id
    assert_hub_matches_truth(env.hub, slow, env.truth(slow))
