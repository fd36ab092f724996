"""Property: however an incident's changes come — new versions, new content at the same
``lastUpdateDateTime``, alerts moved in or out of it without Defender stamping it — and
however they are delivered (any batch size, replayed or not), a user querying the log tables
sees one latest SecurityIncident row per incident:

* no two rows of an incident share a ``LastModifiedTime`` (a tie lets
  ``arg_max(LastModifiedTime, *)`` pick either row);
* ``arg_max(LastModifiedTime, *)`` and ``arg_max(TimeGenerated, *)`` take the same row, and it
  shows the incident as it is now: its status, its owner and the alerts it holds;
* a version stated again is modified n microseconds after it, for the n-th restatement;
* a replay writes every change's row again, to the same latest rows.

The expected state comes from a small model of the scenario, not from the code under test.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.models import Alert, Incident
from xdrsync.tables.logstore import LogStore

TENANT = "00000000-0000-0000-0000-00000000000a"
INCIDENTS = ("41", "42", "43")
ALERTS = ("a1", "a2", "a3", "a4", "a5")
#: Defender's status → Sentinel's.
STATUS = {"active": "New", "inProgress": "Active", "resolved": "Closed"}
OWNERS = (None, "ann@contoso.com", "bob@contoso.com")
BATCH_SIZES = (1, 2, 500)
COLUMNS = "IncidentNumber, TimeGenerated, LastModifiedTime, Status, Owner.assignedTo, AlertIds"
LATEST = "SecurityIncident | summarize arg_max({by}, *) by IncidentNumber | project " + COLUMNS
TIED = (
    "SecurityIncident | summarize n = count() by IncidentNumber, LastModifiedTime "
    "| where n > 1 | count"
)


def _at(minute: int) -> str:
    return f"2026-11-01T{11 + minute // 60:02d}:{minute % 60:02d}:00Z"


# Steps, as drawn: ("version", incident, status, owner) a new version listing its alerts;
# ("restate", incident, status) new content (a new owner) at its current version;
# ("move", alert, hop) the alert read alone, now in the incident `hop` places on;
# ("publish", batch size); ("replay", batch size) every change delivered again.
Step = tuple[Any, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[int], list[Step]]:
    incidents = draw(st.integers(2, 3))
    alerts = draw(st.integers(3, 5))
    homes = draw(st.lists(st.integers(0, incidents - 1), min_size=alerts, max_size=alerts))
    incident = st.integers(0, incidents - 1)
    step = st.one_of(
        st.tuples(
            st.just("version"), incident, st.sampled_from(list(STATUS)), st.sampled_from(OWNERS)
        ),
        st.tuples(st.just("restate"), incident, st.sampled_from(list(STATUS))),
        st.tuples(st.just("move"), st.integers(0, alerts - 1), st.integers(1, incidents - 1)),
        st.tuples(st.just("publish"), st.sampled_from(BATCH_SIZES)),
        st.tuples(st.just("replay"), st.sampled_from(BATCH_SIZES)),
    )
    return incidents, homes, draw(st.lists(step, min_size=3, max_size=10))


@dataclass
class Model:
    """What Defender holds now: each incident's version, status and owner, each alert's
    Graph shape (its ``incidentId`` says where it is), and how many changes stated each
    incident's current version."""

    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stated: dict[str, int] = field(default_factory=dict)
    changes: int = 0  # incident changes the hub should record
    minute: int = 0

    def tick(self) -> str:
        """A moment later than any before it, minutes apart."""
        self.minute += 3
        return _at(self.minute)

    def members(self, incident_id: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts.values() if a["incidentId"] == incident_id]

    def state(self, incident_id: str, **fields: Any) -> Incident:
        """The incident with ``fields`` changed, recorded as one more change of it."""
        self.incidents[incident_id].update(fields)
        self.changes += 1
        return Incident.from_graph(
            {**self.incidents[incident_id], "alerts": self.members(incident_id)}
        )


def _alert(alert_id: str, incident_id: str, minute: int) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": "microsoftDefenderForEndpoint",
        "title": f"Alert {alert_id}",
        "createdDateTime": _at(minute - 60),
        "lastUpdateDateTime": _at(minute - 60),
        "firstActivityDateTime": _at(minute - 70),
        "lastActivityDateTime": _at(minute - 65),
        "evidence": [],
    }


def _commit(
    hub: Hub, incidents: list[Incident], alerts: list[dict[str, Any]] | None = None
) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream="alerts" if alerts else "incidents",
            incidents=incidents,
            alerts=[Alert.from_graph(a) for a in alerts or ()],
        )
    )


def _runner(hub: Hub, store: LogStore) -> DestinationRunner:
    """A runner whose every delivery writes a second later than the one before."""
    ticks = itertools.count()

    def clock() -> datetime:
        return datetime(2026, 12, 5, tzinfo=UTC) + timedelta(seconds=next(ticks))

    return DestinationRunner(hub, LogTables(hub, store, clock=clock), batch_size=500)


def _play(hub: Hub, runner: DestinationRunner, model: Model, step: Step) -> None:
    kind, *args = step
    if kind == "version":
        incident_id, status, owner = INCIDENTS[args[0]], args[1], args[2]
        when = model.tick()
        _commit(
            hub,
            [model.state(incident_id, lastUpdateDateTime=when, status=status, assignedTo=owner)],
        )
        model.stated[incident_id] = 1
    elif kind == "restate":
        # A new owner each time: content this version never had (content it had before
        # would be a re-read, which changes nothing).
        incident_id, owner = INCIDENTS[args[0]], f"analyst{model.changes}@contoso.com"
        _commit(hub, [model.state(incident_id, status=args[1], assignedTo=owner)])
        model.stated[incident_id] += 1
    elif kind == "move":
        alert = model.alerts[ALERTS[args[0]]]
        left = alert["incidentId"]
        joined = INCIDENTS[(INCIDENTS.index(left) + args[1]) % len(model.incidents)]
        alert.update(incidentId=joined, lastUpdateDateTime=model.tick())
        _commit(hub, [], [alert])
        # Neither incident is read again: each gets a change stating its version again.
        for incident_id in (left, joined):
            model.stated[incident_id] += 1
            model.changes += 1
    else:
        runner.batch_size = args[0]
        if kind == "replay":
            runner.replay_from(1)
        runner.publish()


def _latest(store: LogStore, by: str) -> dict[int, tuple[Any, ...]]:
    return {row[0]: tuple(row) for row in store.query(LATEST.format(by=by)).rows}


def _check(hub: Hub, store: LogStore, model: Model) -> dict[int, tuple[Any, ...]]:
    assert store.query(TIED).rows == ((0,),)
    assert store.query("SecurityIncident | count").rows == ((model.changes,),)
    latest = _latest(store, "LastModifiedTime")
    assert _latest(store, "TimeGenerated") == latest
    assert sorted(latest) == sorted(int(i) for i in model.incidents)
    for incident_id, graph in model.incidents.items():
        held = hub.get_incident(TENANT, incident_id)
        assert held is not None
        assert (held.status, held.assigned_to) == (graph["status"], graph["assignedTo"])
        _, _, modified, status, owner, alert_ids = latest[int(incident_id)]
        assert (status, owner) == (STATUS[graph["status"]], graph["assignedTo"]), incident_id
        assert sorted(alert_ids) == sorted(a["id"] for a in model.members(incident_id))
        version = datetime.fromisoformat(graph["lastUpdateDateTime"])
        assert modified == version + timedelta(microseconds=model.stated[incident_id] - 1)
    return latest


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_each_incident_has_one_latest_row_showing_it_as_it_is_now(
    scenario: tuple[int, list[int], list[Step]],
) -> None:
    count, homes, steps = scenario
    # Stated plainly: the "Failing test case" line of this hypothesis shows arguments blank.
    note(f"{count} incidents; alert homes {homes}; steps {steps}")
    model = Model()
    for incident_id in INCIDENTS[:count]:
        model.incidents[incident_id] = {
            "id": incident_id,
            "displayName": f"Incident {incident_id}",
            "severity": "high",
            "createdDateTime": _at(-30),
        }
    for alert_id, home in zip(ALERTS, homes, strict=False):
        model.alerts[alert_id] = _alert(alert_id, INCIDENTS[home], model.minute)
    with tempfile.TemporaryDirectory() as folder, Hub.open(default_url(Path(folder))) as hub:
        store = LogStore(Path(folder) / "logs.duckdb")
        runner = _runner(hub, store)
        first = model.tick()
        created = [
            model.state(i, lastUpdateDateTime=first, status="active", assignedTo=None)
            for i in model.incidents
        ]
        _commit(hub, created)
        model.stated.update(dict.fromkeys(model.incidents, 1))
        for step in steps:
            _play(hub, runner, model, step)
        runner.publish()
        latest = _check(hub, store, model)
        runner.replay_from(1)
        runner.publish()
        again = _check(hub, store, model)
        # The same rows but for when they were written.
        assert {n: row[2:] for n, row in again.items()} == {n: row[2:] for n, row in latest.items()}
