"""The destination's decisions with a scripted ARM: rejections, etags, comment limits."""

from __future__ import annotations

import copy
import operator
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from xdrsync.config import Config, parse_config
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.sentinel.arm import (
    ArmClient,
    CreatedMeanwhileError,
    EtagConflictError,
    IncidentMissingError,
    IncidentRejectedError,
    ListedPage,
    SentinelComment,
)
from xdrsync.destinations.sentinel.comments import ANALYST_RESERVE
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.destinations.sentinel.readback import SentinelReadback
from xdrsync.destinations.sentinel.text import MAX_COMMENTS
from xdrsync.errors import RetriableError
from xdrsync.hub import Hub, InboundBatch
from xdrsync.hub.payload import ticks_from_text
from xdrsync.models import Incident

TENANT = "00000000-0000-0000-0000-00000000000a"
CONFIG: Config = parse_config(
    {
        "tenants": [
            {"name": "contoso", "tenant_id": TENANT, "client_id": TENANT, "client_secret": "x"}
        ],
        "destinations": [
            {
                "name": "soc",
                "type": "sentinel",
                "tenant_id": TENANT,
                "client_id": TENANT,
                "client_secret": "x",
                "subscription_id": "22222222-2222-2222-2222-222222222222",
                "resource_group": "rg",
                "workspace": "law",
            }
        ],
    }
)


class ScriptedArm:
    """Sentinel's incidents in a dict; ``refuse`` names incidents whose PUT gets a 400."""

    def __init__(self) -> None:
        self.incidents: dict[str, tuple[str, dict[str, Any]]] = {}
        self.comments: dict[str, dict[str, str]] = {}
        self.refuse: dict[str, str] = {}
        self.etagless: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.now = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)  # the Date a listing answers
        self.links = True  # False: a listing never links a next page (a proxy drops it)
        self._version = 0

    def list_page(self, filter_text: str, top: int) -> ListedPage:
        """The incidents within the ``$filter``'s bounds on ``lastModifiedTimeUtc`` (and not
        of the status it says ``ne`` to), oldest first, as ARM lists them."""
        self.calls.append(("LIST_INCIDENTS", filter_text))
        within = {"ge": operator.ge, "gt": operator.gt, "lt": operator.lt}
        bounds = [
            (within[op], ticks_from_text(edge))
            for op, edge in re.findall(r"lastModifiedTimeUtc (ge|gt|lt) ([^\s)]+)", filter_text)
        ]
        not_status = re.findall(r"properties/status ne '([^']*)'", filter_text)
        found = []
        for name, (etag, props) in self.incidents.items():
            stamp = ticks_from_text(props["lastModifiedTimeUtc"])
            if props.get("status") in not_status:
                continue
            if all(compare(stamp, edge) for compare, edge in bounds):
                found.append((stamp, {"name": name, "etag": etag, "properties": props}))
        found.sort(key=lambda pair: pair[0])
        items = [copy.deepcopy(item) for _, item in found[:top]]
        more = self.links and len(found) > top
        return ListedPage(items=items, server_date=self.now, more=more, full=len(items) >= top)

    def get(self, name: str) -> tuple[str | None, dict[str, Any]] | None:
        self.calls.append(("GET", name))
        found = self.incidents.get(name)
        if found is None:
            return None
        etag = None if name in self.etagless else found[0]
        return etag, copy.deepcopy(found[1])

    def put(
        self, name: str, properties: dict[str, Any], etag: str | None
    ) -> tuple[str, dict[str, Any]]:
        self.calls.append(("PUT", name))
        if name in self.refuse:
            raise IncidentRejectedError("400", self.refuse[name])
        stored = self.incidents.get(name)
        if stored is None and etag is not None:
            raise IncidentMissingError("404")  # ARM: an etag names an incident that is gone
        if stored is not None and etag != stored[0]:
            raise EtagConflictError("409")
        self._version += 1
        # Sentinel stamps each write, and answers with the incident as it now holds it.
        saved = copy.deepcopy(properties)
        saved["lastModifiedTimeUtc"] = f"2026-11-01T12:00:{self._version:02d}Z"
        self.incidents[name] = (f'"{self._version}"', saved)
        self.comments.setdefault(name, {})
        return f'"{self._version}"', copy.deepcopy(saved)

    def list_comments(self, name: str) -> list[SentinelComment]:
        self.calls.append(("LIST", name))
        if name not in self.incidents:
            raise IncidentMissingError("404")
        return [SentinelComment(n, m) for n, m in self.comments.get(name, {}).items()]

    def put_comment(self, name: str, comment_name: str, message: str) -> None:
        self.calls.append(("COMMENT", name))
        if name not in self.incidents:
            raise IncidentMissingError("404")
        self.comments[name][comment_name] = message

    def delete(self, name: str) -> None:
        """An analyst deletes the incident in Sentinel (its comments go with it)."""
        del self.incidents[name]
        del self.comments[name]

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def puts(self) -> int:
        return sum(1 for verb, _ in self.calls if verb == "PUT")


def _incident(incident_id: str, minute: int = 0, **fields: Any) -> Incident:
    payload: dict[str, Any] = {
        "id": incident_id,
        "displayName": f"Incident {incident_id}",
        "severity": "medium",
        "status": "active",
        "createdDateTime": "2026-11-01T10:00:00Z",
        "lastUpdateDateTime": f"2026-11-01T11:{minute:02d}:00Z",
        "alerts": [
            {
                "id": f"a{incident_id}",
                "incidentId": incident_id,
                "serviceSource": "microsoftDefenderForIdentity",
                "createdDateTime": "2026-11-01T10:00:00Z",
                "lastUpdateDateTime": "2026-11-01T10:00:00Z",
                "firstActivityDateTime": "2026-11-01T09:00:00Z",
            }
        ],
    }
    payload.update(fields)
    return Incident.from_graph(payload)


def _destination(hub: Hub, arm: ScriptedArm) -> SentinelDestination:
    entry = CONFIG.destinations[0]
    return SentinelDestination(entry, CONFIG, hub, arm=arm)  # type: ignore[arg-type]


def _commit(hub: Hub, *incidents: Incident) -> None:
    hub.commit_batch(InboundBatch(tenant_id=TENANT, stream="incidents", incidents=list(incidents)))


def test_a_refused_incident_is_a_rejection_and_the_others_go_on(hub: Hub) -> None:
    arm = ScriptedArm()
    arm.refuse[incident_name(TENANT, "2")] = "BadRequest: The 'title' property is too long"
    _commit(hub, _incident("1"), _incident("2"), _incident("3"))
    destination = _destination(hub, arm)
    changes = hub.changes_after(0)
    rejected = destination.deliver(changes)
    refused = {c.seq for c in changes if c.entity_type == "incident" and c.entity_id == "2"}
    assert {r.seq for r in rejected} == refused  # the incident's own change, not its alert's
    assert all("title' property is too long" in r.reason for r in rejected)
    assert set(arm.incidents) == {incident_name(TENANT, "1"), incident_name(TENANT, "3")}
    assert destination.incidents_rejected == 1
    runner = DestinationRunner(hub, destination)
    runner.publish(force=True)
    assert len(hub.list_dead_letters("soc")) == len(refused)
    # A change of its alert alone (no change of the incident came with it) is the refusal's
    # dead letter: otherwise the refusal would leave none.
    (alert,) = [c for c in changes if c.entity_type == "alert" and c.incident_id == "2"]
    (again,) = destination.deliver([alert])
    assert again.seq == alert.seq


def test_each_incident_is_written_once_per_batch_from_its_current_state(hub: Hub) -> None:
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    _commit(hub, _incident("1", minute=5, status="inProgress"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    assert arm.puts == 1
    (stored,) = arm.incidents.values()
    assert stored[1]["status"] == "Active"  # the newest version, whichever change came first


def test_no_put_without_the_etag_of_an_existing_incident(hub: Hub) -> None:
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    arm.incidents[name] = ('"someone-else"', arm.incidents[name][1])  # saved since our write
    arm.etagless.add(name)  # and read back without an etag
    _commit(hub, _incident("1", minute=5, status="resolved"))
    with pytest.raises(RetriableError, match="without an etag"):
        destination.deliver(hub.changes_after(0))
    assert arm.incidents[name][0] == '"someone-else"'  # their version stands: no blind PUT


def test_an_edit_since_our_last_write_is_read_and_merged(hub: Hub) -> None:
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    _etag, props = arm.incidents[name]
    props["labels"].append({"labelName": "analyst", "labelType": "User"})
    arm.incidents[name] = ('"analyst-saved"', props)  # an analyst saved since our write
    _commit(hub, _incident("1", minute=5, status="inProgress"))
    destination.deliver(hub.changes_after(0))
    assert destination.conflicts == 1  # our remembered etag was stale: 409, read, merge
    labels = [label["labelName"] for label in arm.incidents[name][1]["labels"]]
    assert "analyst" in labels
    assert arm.incidents[name][1]["status"] == "Active"


def test_a_merge_of_a_stale_read_is_done_again(hub: Hub) -> None:
    arm = ScriptedArm()
    name = incident_name(TENANT, "1")
    # Sentinel already holds the incident, but the hub has no copy of it (e.g. a new hub):
    # it is read before it is written.
    arm.incidents[name] = (
        '"7"',
        {"title": "old", "severity": "Low", "status": "New", "labels": []},
    )
    destination = _destination(hub, arm)
    real_get = arm.get
    raced: list[bool] = []

    def stale_get(wanted: str) -> Any:
        found = real_get(wanted)
        if not raced:  # someone writes between our GET and our PUT
            raced.append(True)
            _etag, props = arm.incidents[name]
            props["labels"].append({"labelName": "analyst", "labelType": "User"})
            arm.incidents[name] = ('"other"', props)
        return found

    arm.get = stale_get  # type: ignore[method-assign]
    _commit(hub, _incident("1", minute=5, status="inProgress"))
    destination.deliver(hub.changes_after(0))
    assert destination.conflicts == 1
    labels = [label["labelName"] for label in arm.incidents[name][1]["labels"]]
    assert "analyst" in labels
    assert arm.incidents[name][1]["status"] == "Active"


def test_a_read_older_than_our_last_write_is_neither_an_edit_nor_a_base(hub: Hub) -> None:
    """A GET that lags behind a write Sentinel already answered shows our own write undone:
    it is not handed to the two-way reader, not kept as the copy, and read again."""
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    lagging = copy.deepcopy(arm.incidents[name])  # Sentinel as our first write left it
    _commit(hub, _incident("1", minute=5, status="inProgress"))
    destination.deliver(hub.changes_after(0))  # our second write: Active
    _etag, props = copy.deepcopy(arm.incidents[name])
    props["labels"].append({"labelName": "analyst", "labelType": "User"})
    props["lastModifiedTimeUtc"] = "2026-11-01T12:00:02.5Z"
    arm.incidents[name] = ('"analyst-saved"', props)  # an analyst saved since
    real_get = arm.get
    reads: list[str] = []

    def lagging_get(wanted: str) -> Any:
        reads.append(wanted)
        return copy.deepcopy(lagging) if len(reads) == 1 else real_get(wanted)

    arm.get = lagging_get  # type: ignore[method-assign]
    seen: list[dict[str, Any]] = []
    destination.on_read = lambda _name, _etag, properties: seen.append(properties) or 0
    _commit(hub, _incident("1", minute=9, status="resolved", classification="truePositive"))
    destination.deliver(hub.changes_after(0))
    assert [p["status"] for p in seen] == ["Active"]  # the analyst's version only, not "New"
    assert destination.stale_reads == 1 and len(reads) == 2
    final = arm.incidents[name][1]
    assert final["status"] == "Closed"
    assert "analyst" in [label["labelName"] for label in final["labels"]]
    kept = hub.get_remote_copy(destination.name, name)
    assert (
        kept is not None and kept.properties["lastModifiedTimeUtc"] > props["lastModifiedTimeUtc"]
    )


def _busy(hub: Hub, count: int = 120) -> None:
    comments = [
        {
            "comment": f"note {i}",
            "createdByDisplayName": "bob",
            "createdDateTime": f"2026-11-01T{10 + i // 60:02d}:{i % 60:02d}:00Z",
        }
        for i in range(count)
    ]
    _commit(hub, _incident("1", comments=comments))


def test_more_comments_than_sentinel_holds_end_in_a_notice(hub: Hub) -> None:
    arm = ScriptedArm()
    _busy(hub)
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    stored = arm.comments[name]
    assert len(stored) == MAX_COMMENTS - ANALYST_RESERVE  # analysts keep ten places
    assert any(m.startswith("31 more comments are in Defender: https://") for m in stored.values())
    assert destination.comments_left_out == 31
    again = len(arm.calls)
    destination.deliver(hub.changes_after(0))  # delivered twice: nothing more is written
    assert [verb for verb, _ in arm.calls[again:]] == ["LIST"]  # the incident is as written
    for number in range(ANALYST_RESERVE):  # analysts write their ten: Sentinel takes each
        arm.comments[name][f"analyst-{number}"] = "note"
    assert len(arm.comments[name]) == MAX_COMMENTS


def test_comments_left_out_are_counted_and_warned_of_once(hub: Hub) -> None:
    """The same comments found no place at every delivery of the incident: counted once,
    and warned of once, until their number changes."""
    arm = ScriptedArm()
    _busy(hub)
    destination = _destination(hub, arm)
    with capture_logs() as logs:
        destination.deliver(hub.changes_after(0))
        first = destination.comments_left_out
        assert first > 0
        destination.deliver(hub.changes_after(0))
        assert destination.comments_left_out == first
        _busy(hub, 125)  # five more in Defender, and no place for them
        destination.deliver(hub.changes_after(0))
    assert destination.comments_left_out == first + 5
    warned = [e for e in logs if e["event"] == "sentinel incident has no room for more comments"]
    assert [e["left_out"] for e in warned] == [first, first + 5]


def test_an_unchanged_incident_costs_no_call_even_after_a_restart(hub: Hub) -> None:
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    before = len(arm.calls)
    destination.deliver(hub.changes_after(0))
    assert arm.calls[before:] == []  # what this process wrote is what Defender shows
    restarted = _destination(hub, arm)  # the hub keeps the copy across restarts
    restarted.deliver(hub.changes_after(0))
    assert arm.calls[before:] == []
    assert (destination.skipped_unchanged, restarted.skipped_unchanged) == (1, 1)


def test_connect_makes_no_network_call(hub: Hub) -> None:
    destination = SentinelDestination.connect(CONFIG.destinations[0], CONFIG, hub)
    try:
        assert isinstance(destination.arm, ArmClient)
        assert destination.arm.calls == 0
        assert destination.ingestor is None  # no ingestion_endpoint configured
        assert destination.position() is None
    finally:
        destination.close()


def test_comments_written_before_are_not_listed_again_and_a_new_one_is(hub: Hub) -> None:
    arm = ScriptedArm()
    first = {
        "comment": "seen",
        "createdByDisplayName": "bob",
        "createdDateTime": "2026-11-01T10:05:00Z",
    }
    _commit(hub, _incident("1", comments=[first]))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    before = len(arm.calls)
    _commit(hub, _incident("1", minute=5, status="inProgress", comments=[first]))
    destination.deliver(hub.changes_after(1))
    assert [verb for verb, _ in arm.calls[before:]] == ["PUT"]  # the status; no comment list
    second = {
        "comment": "more",
        "createdByDisplayName": "ann",
        "createdDateTime": "2026-11-01T10:09:00Z",
    }
    _commit(hub, _incident("1", minute=9, status="inProgress", comments=[first, second]))
    before = len(arm.calls)
    destination.deliver(hub.changes_after(2))
    assert [verb for verb, _ in arm.calls[before:]] == ["LIST", "COMMENT"]
    assert any("more" in m for m in arm.comments[incident_name(TENANT, "1")].values())


def test_an_incident_deleted_in_sentinel_is_written_again_and_blocks_nothing(hub: Hub) -> None:
    """A PUT with the etag of an incident deleted in Sentinel is a 404: the incident is
    created again from the hub, with its comments, and the incidents after it are written."""
    arm = ScriptedArm()
    note = {
        "comment": "seen",
        "createdByDisplayName": "bob",
        "createdDateTime": "2026-11-01T10:05:00Z",
    }
    _commit(hub, _incident("1", comments=[note]))
    destination = _destination(hub, arm)
    runner = DestinationRunner(hub, destination)
    runner.publish(force=True)
    name = incident_name(TENANT, "1")
    arm.delete(name)
    _commit(hub, _incident("1", minute=5, status="inProgress", comments=[note]))
    _commit(hub, _incident("2", minute=6))
    runner.publish(force=True)
    assert hub.list_cursors()[0].seq == hub.max_seq()
    assert arm.incidents[name][1]["status"] == "Active"
    assert [m.endswith("seen") for m in arm.comments[name].values()] == [True]
    assert incident_name(TENANT, "2") in arm.incidents
    assert destination.recreated == 1
    before = len(arm.calls)
    runner.replay_from(1)
    runner.publish(force=True)  # the copy now names the new incident: nothing to write
    assert [verb for verb, _ in arm.calls[before:]] == []


def test_an_analysts_comment_reaches_defender_once_though_a_write_met_a_lagging_404(
    hub: Hub,
) -> None:
    """A write meets a 404 from a replica that lags, although the incident is there: it is
    read again and found with the analyst's comment xdrsync already forwarded to Defender,
    which is not forwarded a second time."""
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    reader = SentinelReadback(destination, CONFIG, hub, clock=lambda: arm.now)
    # An analyst comments in Sentinel and labels the incident; the reader forwards the comment.
    arm.comments[name]["analyst-comment-1"] = "host looks clean, see ticket 42"
    _etag, props = arm.incidents[name]
    props = {
        **props,
        "lastModifiedTimeUtc": "2026-11-01T12:00:20Z",
        "labels": [*props["labels"], {"labelName": "triage", "labelType": "User"}],
    }
    arm.incidents[name] = ('"analyst"', props)
    reader.poll()

    def forwarded() -> list[Any]:
        return [e.wanted for e in hub.edits(tenant_id=TENANT) if e.field == "comment"]

    assert forwarded() == ["host looks clean, see ticket 42"]
    real_put = arm.put
    lagging = [True]

    def put_after_a_lagging_404(n: str, properties: dict[str, Any], etag: str | None) -> Any:
        if lagging and etag is not None:
            lagging.clear()
            raise IncidentMissingError("404 NotFound")
        return real_put(n, properties, etag)

    arm.put = put_after_a_lagging_404  # type: ignore[method-assign]
    _commit(hub, _incident("1", minute=5, status="inProgress"))
    destination.deliver(hub.changes_after(1))
    assert arm.incidents[name][1]["status"] == "Active"
    assert forwarded() == ["host looks clean, see ticket 42"]
    assert reader.poll() == 0


def test_comments_reach_an_incident_recreated_by_a_put_whose_answer_was_lost(hub: Hub) -> None:
    """The incident was deleted in Sentinel; the PUT that creates it again lands, but its
    answer is lost. It is not sent again (without an etag it would replace whatever was saved
    since; ``ArmClient.put`` finds it there, ``CreatedMeanwhileError``): the same delivery
    reads the new incident, which holds none of the comments written on the deleted one, and
    writes them."""
    arm = ScriptedArm()
    note = {
        "comment": "seen",
        "createdByDisplayName": "bob",
        "createdDateTime": "2026-11-01T10:05:00Z",
    }
    _commit(hub, _incident("1", comments=[note]))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    arm.delete(name)
    real_put = arm.put
    sent: list[str | None] = []

    def lost_answer(n: str, properties: dict[str, Any], etag: str | None) -> Any:
        sent.append(etag)
        real_put(n, properties, etag)
        raise CreatedMeanwhileError("connection reset after the PUT was sent; a GET found it")

    arm.put = lost_answer  # type: ignore[method-assign]
    _commit(hub, _incident("1", minute=5, status="inProgress", comments=[note]))
    destination.deliver(hub.changes_after(1))
    # The copy's etag finds it gone (404); created again once, then read, not sent again.
    assert sent == ['"1"', None]
    assert [m.endswith("seen") for m in arm.comments[name].values()] == [True]
