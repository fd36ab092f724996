"""Chaos: `xdrsync run` killed with SIGKILL at random moments while Defender misbehaves.

The emulator pages as Graph does (offset next links, the listing evaluated again for every
page, so edits made while the service reads shift records across pages) and runs live
activity (new incidents, alerts joining, analyst edits, comments, merges) with throttling,
5xx, dropped connections, failing $expand and late visibility. The service is killed with
SIGKILL 22 times and restarted. The lookback is a few seconds, far shorter than the run, so
the last cycle re-reads only the end of it: whatever the killed services lost stays lost.
When the faults stop, that one cycle must bring the hub — incidents, alerts, evidence,
comments, histories and the log tables — to exactly the emulator's ground truth.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from truth import assert_hub_matches_truth, write_config

from xdrsync.config import SyncConfig
from xdrsync.emulator.service import settings_for
from xdrsync.sync.window import StreamState

KILLS = 22
#: What `xdrsync run` prints once it starts its sync loops.
STARTED = ": syncing 1 tenant(s) into "
# expand_error_rate is per incident: at 0.005 about one page in five of 50 incidents fails
# $expand and take the per-incident fallback. moved_alert_rate: one activity step in twenty
# moves an alert to another incident without stamping the one it left.
FAULTS = (
    "error_rate=0.05,reset_rate=0.03,slow_rate=0.02,slow_seconds=0.3,expand_error_rate=0.005,"
    "late_seconds=2,tie_shuffle_rate=0.5,moved_alert_rate=0.05"
)


# One chaos test at a time in `make test`: each counts events a loaded machine may starve.
@pytest.mark.xdist_group("chaos")
def test_sigkill_at_random_moments_then_exact_ground_truth(make_env: Any, tmp_path: Path) -> None:
    rng = random.Random(20261128)
    settings = settings_for(
        seed=42, incidents=120, activity_per_minute=240, rate_limit_per_minute=900, faults=FAULTS
    )
    env = make_env(
        settings,
        sync=SyncConfig(
            poll_interval_seconds=0.3,
            # The service's own pacing under chaos too: quiet cycles and alerts_v2 every 0.9 s.
            idle_poll_interval_seconds=0.9,
            alerts_poll_interval_seconds=0.9,
            lookback_seconds=5,
            max_attempts=10,
        ),
    )
    tenant = env.config.tenants[0].tenant_id
    config_file = write_config(tmp_path, env)
    command = [sys.executable, "-m", "xdrsync", "run", "--config", str(config_file)]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    logs = tmp_path / "run.log"
    began = time.time()
    with logs.open("ab") as sink:
        while kills < KILLS:
            started = logs.read_text().count(STARTED)
            process = subprocess.Popen(command, stdout=sink, stderr=sink, env=environment)
            # The kill comes at a random moment of the work, not of the start-up: a loaded
            # machine can take longer than the whole window to start the service (CI did so
            # once, and no killed service had synced an incident).
            deadline = time.monotonic() + 60
            while logs.read_text().count(STARTED) == started and time.monotonic() < deadline:
                assert process.poll() is None, logs.read_text()[-3000:]
                time.sleep(0.05)
            assert logs.read_text().count(STARTED) > started, logs.read_text()[-3000:]
            time.sleep(rng.uniform(1.0, 5.0))
            assert process.poll() is None, logs.read_text()[-3000:]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            kills += 1
    ended = time.time()
    # The killed services did the work, before the last cycle: every seeded incident is in,
    # and both watermarks are in the second half of the run, so the last cycle's lookback
    # (5 s) reaches back over a small part of it only.
    assert env.hub.counts()[tenant]["incidents"] >= 120
    for stream in ("incidents", "alerts"):
        mark = StreamState.from_doc(env.hub.get_state(tenant, stream)).watermark
        assert mark is not None and mark.timestamp() > began + (ended - began) / 2, stream

    # Faults stop: pausing also makes every pending update listable.
    env.control("POST", "/pause")
    env.workspace.close()
    final = subprocess.run(
        [sys.executable, "-m", "xdrsync", "sync", "--once", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    from xdrsync.workspace import Workspace

    with Workspace.open(env.config) as workspace:
        truth = env.truth()
        assert_hub_matches_truth(workspace.hub, tenant, truth)
        stats = env.server.emulator.stats_snapshot()
        # The run really was hostile.
        assert stats["faults"].get("error", 0) + stats["faults"].get("reset", 0) > 0
        assert stats["by_route"]
        # The log tables hold each version once, and their latest state is the hub's.
        duplicates = workspace.logs.query(
            "SecurityIncident | summarize n = count() by IncidentNumber, LastModifiedTime, Status, Owner | where n > 1 | count"
        )
        assert duplicates.rows[0][0] == 0
        latest = workspace.logs.query(
            "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber | count"
        )
        assert latest.rows[0][0] == len(truth)
        # Each incident's latest row lists the alerts it has now, alerts moved away included.
        listed = workspace.logs.query(
            "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
            "| project ProviderIncidentId, AlertIds"
        )
        shown = {
            incident_id: sorted(json.loads(ids) if isinstance(ids, str) else ids)
            for incident_id, ids in listed.rows
        }
        assert shown == {i["id"]: sorted(a["id"] for a in i.get("alerts") or []) for i in truth}
        assert stats["faults"].get("moved_alert", 0) > 0
        alerts = {a["id"]: a for i in truth for a in i.get("alerts") or []}
        rows = workspace.logs.query(
            "SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId "
            "| project SystemAlertId, Status"
        )
        assert {row[0] for row in rows.rows} >= alerts.keys()
