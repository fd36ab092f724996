"""An alert Defender moves to another incident without a merge, end to end: the emulator moves
it (stamping the alert and the incident it joins, not the one it leaves), `xdrsync sync
--once` runs before and after, and what an analyst sees must follow the move: the hub's
alerts of both incidents, the log tables' latest SecurityIncident rows and the console's
queue index. The same for a merge whose alerts moved a cycle before the source was closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from truth import assert_hub_matches_truth, write_config

from xdrsync.emulator.activity import Merge
from xdrsync.emulator.service import settings_for
from xdrsync.hub import schema as s
from xdrsync.workspace import Workspace

LATEST = "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber"


def _sync_once(config_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xdrsync", "sync", "--once", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _two_open(truth: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An open incident with two alerts or more, and another open incident."""
    open_ = [i for i in truth if i["status"] in ("active", "inProgress")]
    source = next(i for i in open_ if len(i["alerts"]) >= 2)
    target = next(i for i in open_ if i["id"] != source["id"])
    return source, target


def _latest_rows(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Each incident's latest SecurityIncident row, as `arg_max(TimeGenerated, *)` gives it."""
    result = workspace.logs.query(
        f"{LATEST} | project ProviderIncidentId, AlertIds, AdditionalData, FirstActivityTime, "
        "LastActivityTime"
    )
    rows = {}
    for incident_id, alert_ids, additional, first, last in result.rows:
        rows[incident_id] = {
            "AlertIds": sorted(json.loads(alert_ids) if isinstance(alert_ids, str) else alert_ids),
            "alertsCount": (json.loads(additional) if isinstance(additional, str) else additional)[
                "alertsCount"
            ],
            "first": first,
            "last": last,
        }
    return rows


def _queue(workspace: Workspace, tenant: str) -> dict[str, Any]:
    q = s.queue_entry
    with workspace.hub.reading() as conn:
        query = select(q.c.incident_id, q.c.alert_count).where(q.c.tenant_id == tenant)
        return {incident_id: count for incident_id, count in conn.execute(query)}


def _activity(alerts: list[dict[str, Any]]) -> tuple[datetime | None, datetime | None]:
    firsts = [a["firstActivityDateTime"] for a in alerts if a.get("firstActivityDateTime")]
    lasts = [a["lastActivityDateTime"] for a in alerts if a.get("lastActivityDateTime")]
    return (_moment(min(firsts)) if firsts else None, _moment(max(lasts)) if lasts else None)


def _moment(text: str) -> datetime:
    from xdrsync.models import Alert

    parsed = Alert.from_graph({"id": "x", "firstActivityDateTime": text}).first_activity_date_time
    assert parsed is not None
    return parsed


def _assert_everything_follows(workspace: Workspace, tenant: str, truth: list[Any]) -> None:
    """The hub, the latest SecurityIncident rows and the queue index all agree with Defender:
    every alert under the incident that lists it now, once."""
    assert_hub_matches_truth(workspace.hub, tenant, truth)
    rows = _latest_rows(workspace)
    queue = _queue(workspace, tenant)
    for incident in truth:
        want = sorted(a["id"] for a in incident["alerts"])
        row = rows[incident["id"]]
        assert row["AlertIds"] == want, f"SecurityIncident {incident['id']} AlertIds"
        assert row["alertsCount"] == len(want), incident["id"]
        assert queue[incident["id"]] == len(want), f"queue index of {incident['id']}"
        if want:
            first, last = _activity(incident["alerts"])
            assert (row["first"], row["last"]) == (first, last), incident["id"]
    listed = [a for row in rows.values() for a in row["AlertIds"]]
    assert len(listed) == len(set(listed)), "an alert shows under two incidents"


def test_an_alert_moved_without_a_merge_leaves_its_old_incident_everywhere(
    make_env: Any, tmp_path: Path
) -> None:
    env = make_env(settings_for(seed=13, incidents=30))
    tenant = env.config.tenants[0].tenant_id
    config_file = write_config(tmp_path, env)
    env.workspace.close()
    _sync_once(config_file)
    source, target = _two_open(env.truth())
    moved = source["alerts"][0]["id"]
    reply = env.control("POST", f"/alerts/{moved}/move", json={"incidentId": target["id"]})
    assert reply.status_code == 200, reply.text
    truth = {i["id"]: i for i in env.truth()}
    # Defender's records after the move: the alert names the target, the target lists it and
    # is stamped again; the source no longer lists it but keeps its lastUpdateDateTime.
    assert truth[source["id"]]["lastUpdateDateTime"] == source["lastUpdateDateTime"]
    assert moved not in {a["id"] for a in truth[source["id"]]["alerts"]}
    assert moved in {a["id"] for a in truth[target["id"]]["alerts"]}
    assert truth[target["id"]]["lastUpdateDateTime"] > target["lastUpdateDateTime"]
    _sync_once(config_file)
    with Workspace.open(env.config) as workspace:
        hub = workspace.hub
        left = hub.get_incident(tenant, source["id"])
        joined = hub.get_incident(tenant, target["id"])
        assert left is not None and joined is not None
        assert moved not in [a.id for a in left.alerts]
        assert moved in [a.id for a in joined.alerts]
        rows = _latest_rows(workspace)
        assert moved not in rows[source["id"]]["AlertIds"]
        assert moved in rows[target["id"]]["AlertIds"]
        _assert_everything_follows(workspace, tenant, list(truth.values()))
        # The source had no new version: its rows were made again from the move alone.
        versions = hub.incident_history(tenant, source["id"])
        assert versions[-1].payload["lastUpdateDateTime"] == source["lastUpdateDateTime"]


def test_a_merge_whose_alerts_moved_a_cycle_before_the_source_was_closed(
    make_env: Any, tmp_path: Path
) -> None:
    """Defender moves the alerts first and closes the source as redirected later: between the
    two cycles the source must show none of them, and after the merge it is Closed with none."""
    env = make_env(settings_for(seed=17, incidents=30))
    tenant = env.config.tenants[0].tenant_id
    config_file = write_config(tmp_path, env)
    env.workspace.close()
    _sync_once(config_file)
    source, target = _two_open(env.truth())
    for alert in source["alerts"]:
        reply = env.control(
            "POST", f"/alerts/{alert['id']}/move", json={"incidentId": target["id"]}
        )
        assert reply.status_code == 200, reply.text
    _sync_once(config_file)
    with Workspace.open(env.config) as workspace:
        _assert_everything_follows(workspace, tenant, env.truth())
        assert _latest_rows(workspace)[source["id"]]["AlertIds"] == []
    env.server.emulator.store(tenant).apply(Merge(source_id=source["id"], target_id=target["id"]))
    _sync_once(config_file)
    with Workspace.open(env.config) as workspace:
        truth = env.truth()
        _assert_everything_follows(workspace, tenant, truth)
        closed = workspace.logs.query(
            f"{LATEST} | where ProviderIncidentId == '{source['id']}' | project Status"
        )
        assert closed.rows[0][0] == "Closed"
        assert source["id"] in workspace.hub.get_merged_from(tenant, target["id"])
