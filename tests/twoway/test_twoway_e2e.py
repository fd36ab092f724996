"""Two-way sync against the emulator, in one process: edits reach Defender once, come back as
the workspace user's change, conflicts follow the policy, crashes lose and repeat nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import twowayenv

from xdrsync.config import Config, ConflictPolicies, SyncConfig, TwoWayConfig
from xdrsync.emulator.activity import Merge
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.errors import EditRefusedError
from xdrsync.graph.errors import BadRequestError
from xdrsync.sync.engine import sync_tenant
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.submit import current_view, resolve, submit
from xdrsync.workspace import Workspace, inbound_settings


@dataclass
class Env(twowayenv.Env):
    def portal(self, incident_id: str, **changes: Any) -> None:
        """An analyst's edit in the Defender portal."""
        reply = httpx.post(
            f"{self.server.base_url}/_emulator/incidents/{incident_id}", json=changes, timeout=30
        )
        reply.raise_for_status()

    def writes(self) -> int:
        """PATCH and comment requests Defender has answered so far."""
        stats = httpx.get(f"{self.server.base_url}/_emulator/stats", timeout=30).json()
        return sum(
            n
            for route, n in stats["by_route"].items()
            if route.startswith(("PATCH ", "POST /v1.0/"))
        )


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Any]:
    made: list[Env] = []

    def _make(policy: str = "latest_wins", **settings: Any) -> Env:
        server = EmulatorServer(settings_for(seed=11, incidents=12, **settings)).start()
        config = Config.for_emulator(
            server.base_url,
            server.emulator.settings.tenants,
            workspace_path=tmp_path / f"ws{len(made)}",
            sync=SyncConfig(poll_interval_seconds=0.5, lookback_seconds=60, max_attempts=4),
            rate_limit_per_minute=6000,
        ).model_copy(
            update={
                "two_way": TwoWayConfig(
                    policy=ConflictPolicies(status=policy, owner=policy, classification=policy),  # type: ignore[arg-type]
                    retry_seconds=0.05,
                )
            }
        )
        workspace = Workspace.open(config)
        env = Env(server, config, workspace, workspace.pusher())
        made.append(env)
        env.cycle()
        return env

    yield _make
    for env in made:
        env.close()


def test_an_edit_reaches_defender_once_and_comes_back_as_the_users_change(make_env: Any) -> None:
    env = make_env()
    incident = env.open_incident()
    before = env.writes()
    ids = env.edit(
        incident,
        status="resolved",
        classification="truePositive",
        determination="phishing",
        owner="alice@contoso.com",
        add_tags=("bec",),
        comment="Mailbox rule removed",
    )
    assert len(ids) == 5
    assert {r.state for r in env.hub.edits(ids=ids)} == {"pending"}
    env.cycle()
    truth = env.truth(incident)
    assert truth["status"] == "resolved"
    assert (truth["classification"], truth["determination"]) == ("truePositive", "phishing")
    assert truth["assignedTo"] == "alice@contoso.com"
    assert "bec" in truth["customTags"]
    assert [c["comment"] for c in truth["comments"]].count("Mailbox rule removed") == 1
    assert env.writes() - before == 2  # one comment POST, one PATCH for four fields
    assert {r.state for r in env.hub.edits(ids=ids)} == {"confirmed"}
    # The version Defender made of the write is ours: the table row names the user.
    rows = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project ModifiedBy, Status"
    )
    assert [tuple(r) for r in rows.rows] == [("alice@contoso.com", "Closed")]
    comments = env.hub.list_comments(env.tenant.tenant_id, incident)
    ours = [c for c in comments if c.comment == "Mailbox rule removed"]
    assert len(ours) == 1 and ours[0].written_by == "alice@contoso.com"
    decisions = [a.decision for a in env.hub.audit_tail(200) if a.entity_id == incident]
    assert decisions.count("edit_queued") == 5
    assert decisions.count("pushed") == 4 and decisions.count("comment_posted") == 1


def test_idle_cycles_write_nothing(make_env: Any) -> None:
    env = make_env()
    incident = env.open_incident()
    env.edit(incident, owner="bob@contoso.com", comment="looking")
    env.cycle()
    settled = env.writes()
    for _ in range(10):
        env.cycle()
    assert env.writes() == settled


@pytest.mark.parametrize(
    ("policy", "state", "final"),
    [
        ("latest_wins", "overridden", "portal@contoso.com"),  # the portal edit came later
        ("defender_wins", "overridden", "portal@contoso.com"),
        ("workspace_wins", "confirmed", "alice@contoso.com"),
        ("manual", "conflict", "portal@contoso.com"),
    ],
)
def test_the_same_field_edited_on_both_sides_resolves_by_policy(
    make_env: Any, policy: str, state: str, final: str
) -> None:
    env = make_env(policy)
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")  # before the edit is pushed
    env.cycle()
    env.cycle()  # converged within two cycles
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == state
    assert env.truth(incident)["assignedTo"] == final
    current = env.hub.get_incident(env.tenant.tenant_id, incident)
    assert current is not None and current.assigned_to == final
    # The losing side is in the audit trail with both values and who made them.
    trail = [a for a in env.hub.audit_tail(200) if a.detail.get("outbox") == edit]
    last = next(a.detail for a in trail if a.decision != "edit_queued")
    assert last["workspace"] == "alice@contoso.com" and last["defender"] == "portal@contoso.com"
    assert last["author"] == "alice@contoso.com"
    if policy == "manual":
        assert resolve(env.hub, edit, "workspace").state == "pending"
        env.cycle()
        assert env.hub.edits(ids=[edit])[0].state == "confirmed"
        assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_tags_from_both_sides_survive(make_env: Any) -> None:
    env = make_env()
    incident = env.open_incident()
    env.portal(incident, customTags=["keep", "drop"])
    env.cycle()
    env.edit(incident, add_tags=("ours",), remove_tags=("drop",))
    env.portal(incident, customTags=["keep", "drop", "theirs"])  # meanwhile, in the portal
    env.cycle()
    assert sorted(env.truth(incident)["customTags"]) == ["keep", "ours", "theirs"]


def test_a_comment_is_not_posted_twice_after_a_crash_before_its_confirmation(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, comment="exactly once")
    real = env.hub.settle_edits

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies after Defender took the comment

    monkeypatch.setattr(env.hub, "settle_edits", crash)
    with pytest.raises(KeyboardInterrupt):
        env.pusher.push_due()
    monkeypatch.setattr(env.hub, "settle_edits", real)
    assert env.hub.edits(ids=[edit])[0].state == "pending"
    posted = env.writes()
    env.cycle()
    assert env.writes() == posted  # found in Defender, not posted again
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed" and row.comment_key
    assert [c["comment"] for c in env.truth(incident)["comments"]].count("exactly once") == 1


def test_a_field_write_is_not_repeated_after_a_crash_before_its_confirmation(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    incident = env.open_incident()
    ids = env.edit(
        incident, status="resolved", classification="falsePositive", determination="notMalicious"
    )

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies after Defender applied the PATCH

    monkeypatch.setattr(env.hub, "settle_edits", crash)
    with pytest.raises(KeyboardInterrupt):
        env.pusher.push_due()
    monkeypatch.undo()
    patched = env.writes()
    env.cycle()
    assert env.writes() == patched  # Defender already has it: confirmed without a write
    assert {r.state for r in env.hub.edits(ids=ids)} == {"confirmed"}
    assert env.truth(incident)["status"] == "resolved"


def test_transient_faults_delay_edits_and_never_duplicate_them(make_env: Any) -> None:
    env = make_env()
    incidents = [s.id for s in env.hub.list_incidents(limit=50) if not s.merged_into][:4]
    httpx.post(f"{env.server.base_url}/_emulator/faults", content="error_rate=0.4,reset_rate=0.1")
    ids = [i for incident in incidents for i in env.edit(incident, comment=f"note {incident}")]
    for _ in range(60):
        env.pusher.push_due()
        if all(r.state != "pending" for r in env.hub.edits(ids=ids)):
            break
        time.sleep(0.1)
    httpx.post(f"{env.server.base_url}/_emulator/faults", content="")
    env.cycle()
    assert {r.state for r in env.hub.edits(ids=ids)} == {"confirmed"}
    for incident in incidents:
        texts = [c["comment"] for c in env.truth(incident)["comments"]]
        assert texts.count(f"note {incident}") == 1


def test_a_read_only_tenant_refuses_edits_up_front_and_keeps_syncing(make_env: Any) -> None:
    env = make_env(read_only_tenants=[0])
    incident = env.open_incident()
    with pytest.raises(EditRefusedError, match=r"SecurityIncident\.ReadWrite\.All"):
        env.edit(incident, owner="alice@contoso.com")
    assert env.hub.edits() == []
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    current = env.hub.get_incident(env.tenant.tenant_id, incident)
    assert current is not None and current.assigned_to == "portal@contoso.com"


def test_an_edit_queued_before_the_permission_was_known_fails_with_graphs_reason(
    make_env: Any,
) -> None:
    env = make_env(read_only_tenants=[0])
    incident = env.open_incident()
    env.hub.save_state(env.tenant.tenant_id, "two_way", {})  # permissions not known yet
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.workspace.pusher(sign_in=False).push_due()  # Graph decides
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "failed"
    assert "SecurityIncident.ReadWrite.All" in (row.outcome or "")
    assert env.truth(incident).get("assignedTo") != "alice@contoso.com"


def test_alert_edits_reach_defender(make_env: Any) -> None:
    env = make_env()
    alert = next(a for a in env.truth(env.open_incident())["alerts"])
    ids = submit(
        env.hub,
        env.tenant,
        "alert",
        alert["id"],
        EditRequest(status="inProgress", owner="carol@contoso.com", comment="triaging"),
        author="carol@contoso.com",
        origin="test",
    )
    env.cycle()
    assert {r.state for r in env.hub.edits(ids=ids)} == {"confirmed"}
    truth = next(a for a in env.truth(alert["incidentId"])["alerts"] if a["id"] == alert["id"])
    assert (truth["status"], truth["assignedTo"]) == ("inProgress", "carol@contoso.com")
    assert [c["comment"] for c in truth["comments"]].count("triaging") == 1


def test_edits_on_an_incident_merged_away_follow_the_documented_rule(make_env: Any) -> None:
    env = make_env()
    source, target = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    field, note = env.edit(source, owner="alice@contoso.com", comment="moved with the case")
    store = env.server.emulator.store(env.tenant.tenant_id)
    store.apply(Merge(source, target))
    env.cycle()
    env.cycle()
    rows = {r.id: r for r in env.hub.edits(ids=[field, note])}
    assert rows[field].state == "failed" and target in (rows[field].outcome or "")
    assert rows[note].state == "confirmed" and rows[note].entity_id == target
    assert "moved with the case" in [c["comment"] for c in env.truth(target)["comments"]]


def test_a_comment_follows_a_merge_within_the_push_that_finds_it(make_env: Any) -> None:
    env = make_env()
    source, target = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    (note,) = env.edit(source, comment="follows the case")
    env.server.emulator.store(env.tenant.tenant_id).apply(Merge(source, target))
    for tenant in env.workspace.sources():  # the workspace reads the merge first
        assert sync_tenant(env.hub, tenant, inbound_settings(env.config)).ok
    env.pusher.push_due()  # moves the comment to the survivor and posts it there, in one push
    (row,) = env.hub.edits(ids=[note])
    assert (row.state, row.entity_id) == ("confirmed", target)
    assert "follows the case" in [c["comment"] for c in env.truth(target)["comments"]]


def test_a_comment_made_on_an_incident_already_merged_goes_to_the_survivor(make_env: Any) -> None:
    """Once the workspace knows of the merge, a comment made on the merged incident is queued
    for the survivor (the pusher's rule for comments made before the merge); field edits of
    it are still refused."""
    env = make_env()
    source, target = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    env.server.emulator.store(env.tenant.tenant_id).apply(Merge(source, target))
    env.cycle()
    (note,) = env.edit(source, comment="after the merge")
    (row,) = env.hub.edits(ids=[note])
    assert (row.state, row.entity_id) == ("pending", target)
    with pytest.raises(EditRefusedError, match=f"merged into {target}"):
        env.edit(source, owner="alice@contoso.com", comment="and mine")
    env.cycle()
    (row,) = env.hub.edits(ids=[note])
    assert (row.state, row.entity_id) == ("confirmed", target)
    assert "after the merge" in [c["comment"] for c in env.truth(target)["comments"]]


def test_latest_wins_takes_the_workspace_edit_made_after_defenders_change(make_env: Any) -> None:
    env = make_env("latest_wins")
    incident = env.open_incident()
    env.portal(incident, assignedTo="portal@contoso.com")
    time.sleep(0.01)
    # The analyst still sees the old owner (the workspace has not read the portal edit yet).
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.cycle()
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_a_latest_wins_decision_names_the_time_of_defenders_change_it_compared(
    make_env: Any,
) -> None:
    """Carol is assigned in the portal and the workspace reads it; Alice, on a page drawn
    before, assigns herself; then the incident changes in Defender in another way (its
    severity). Alice's edit is the later change of the owner and wins. The audit row shows
    when Defender's owner was set, the time the policy compared, not only the record's last
    update, which is after Alice's edit and would say the opposite."""
    env = make_env("latest_wins")
    incident = env.open_incident()
    before = env.truth(incident)
    env.portal(incident, assignedTo="carol@contoso.com")
    env.cycle()
    time.sleep(0.01)
    (edit,) = env.edit(
        incident, owner="alice@contoso.com", seen={"assignedTo": before.get("assignedTo")}
    )
    time.sleep(0.01)
    env.portal(incident, severity="low" if before["severity"] != "low" else "high")
    env.pusher.push_due()

    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"
    (pushed,) = [
        a
        for a in env.hub.audit_tail(200)
        if a.detail.get("outbox") == edit and a.decision == "pushed"
    ]
    assert pushed.detail["defender"] == "carol@contoso.com"
    changed_at = pushed.detail.get("defender_changed_at")
    assert changed_at is not None, pushed.detail
    edited_at = datetime.fromisoformat(pushed.detail["edited_at"])
    if edited_at.tzinfo is None:
        edited_at = edited_at.replace(tzinfo=UTC)
    assert datetime.fromisoformat(changed_at) < edited_at, pushed.detail


def test_a_comment_alone_comes_back_as_the_users_change(make_env: Any) -> None:
    env = make_env()
    incident = env.open_incident()
    env.edit(incident, author="dana@contoso.com", comment="only a comment")
    env.cycle()
    rows = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project ModifiedBy"
    )
    assert [tuple(r) for r in rows.rows] == [("dana@contoso.com",)]


def test_a_portal_change_not_yet_read_is_not_credited_to_a_comments_author(
    make_env: Any,
) -> None:
    """Bob resolves the incident in the portal; before the hub reads that, Dana comments in the
    workspace. The version her comment makes holds Bob's resolve too: it is not hers to claim."""
    env = make_env()
    incident = env.open_incident()
    env.portal(incident, status="resolved", lastModifiedBy="bob@defender-portal")
    env.edit(incident, author="dana@contoso.com", comment="looking at it")
    env.cycle()
    latest = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project Status, ModifiedBy"
    )
    ((status, modified_by),) = [tuple(r) for r in latest.rows]
    assert status == "Closed" and modified_by != "dana@contoso.com"


def test_a_portal_comment_not_yet_read_is_not_credited_to_a_comments_author(
    make_env: Any,
) -> None:
    """Bob comments in the portal; before the hub reads that, Dana comments in the workspace.
    The version her comment makes holds Bob's comment too: it is not hers to claim."""
    env = make_env()
    incident = env.open_incident()
    reply = httpx.post(
        f"{env.server.base_url}/_emulator/incidents/{incident}",
        json={"comments": [{"comment": "on it", "createdByDisplayName": "bob@contoso.com"}]},
        timeout=30,
    )
    reply.raise_for_status()
    env.edit(incident, author="dana@contoso.com", comment="looking at it")
    env.cycle()
    latest = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project ModifiedBy"
    )
    assert [tuple(r) for r in latest.rows] != [("dana@contoso.com",)]


def test_one_records_edits_make_one_patch_across_a_batch_boundary(make_env: Any) -> None:
    env = make_env()
    first, second = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    env.edit(first, comment="one")
    env.edit(first, comment="two")
    env.edit(second, owner="erin@contoso.com", add_tags=("batch",))  # ids 3 and 4
    stats = f"{env.server.base_url}/_emulator/stats"
    before = httpx.get(stats).json()["by_route"]
    report = env.pusher.push_due(batch=3)
    after = httpx.get(stats).json()["by_route"]
    patches = sum(n - before.get(r, 0) for r, n in after.items() if r.startswith("PATCH "))
    assert patches == 1
    assert report.writes == 3 and report.states == {"confirmed": 4}


def _crash(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt  # the process dies here


def test_a_comment_posted_before_a_merge_is_not_posted_again_on_the_survivor(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    source, target = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    (edit,) = env.edit(source, comment="before the merge")
    monkeypatch.setattr(env.hub, "settle_edits", _crash)
    with pytest.raises(KeyboardInterrupt):
        env.pusher.push_due()
    monkeypatch.undo()
    env.server.emulator.store(env.tenant.tenant_id).apply(Merge(source, target))
    posted = env.writes()
    env.cycle()
    assert env.writes() == posted
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, row.entity_id) == ("confirmed", source)
    assert [c["comment"] for c in env.truth(source)["comments"]].count("before the merge") == 1
    assert "before the merge" not in [c["comment"] for c in env.truth(target)["comments"]]


def test_a_later_edit_is_merged_from_what_an_unconfirmed_attempt_wrote(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env("latest_wins")
    incident = env.open_incident()
    (first,) = env.edit(incident, owner="bob@contoso.com")
    later: list[int] = []
    real_mark_sent = env.hub.mark_sent

    def mark_sent(ids: Any) -> None:
        # While the PATCH for bob is on its way, the user (seeing bob pending) picks carol.
        later.extend(env.edit(incident, owner="carol@contoso.com"))
        real_mark_sent(ids)

    monkeypatch.setattr(env.hub, "mark_sent", mark_sent)
    monkeypatch.setattr(env.hub, "settle_edits", _crash)  # Defender applied bob; we died
    with pytest.raises(KeyboardInterrupt):
        env.pusher.push_due()
    monkeypatch.undo()
    env.cycle()
    rows = {r.id: r.state for r in env.hub.edits(ids=[first, *later])}
    assert rows == {first: "confirmed", later[0]: "confirmed"}
    assert env.truth(incident)["assignedTo"] == "carol@contoso.com"


def test_a_classification_edit_is_confirmed_when_defender_answers_in_pascal_case(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph's documented PATCH answer spells the pair "TruePositive"/"MultiStagedAttack"
    (microsoft-apis.md §2.3), as the emulator answers: the edit is confirmed, not failed as
    "Defender answered the write with ...", and the version it made reads back as the user's
    change, not Defender's."""
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident)
    pair = ("truePositive", "multiStagedAttack")
    if (before["classification"], before["determination"]) == pair:
        pair = ("falsePositive", "notMalicious")
    target = next(iter(env.pusher.targets.values()))
    answers: list[dict[str, Any]] = []
    real_patch = target.api.patch_incident

    def patch_incident(entity_id: str, body: Any) -> Any:
        answer = real_patch(entity_id, body)
        answers.append(dict(answer))
        return answer

    monkeypatch.setattr(target.api, "patch_incident", patch_incident)
    (edit,) = env.edit(
        incident, author="dana@contoso.com", classification=pair[0], determination=pair[1]
    )
    env.cycle()
    (answer,) = answers
    assert (answer["classification"], answer["determination"]) == tuple(
        v[0].upper() + v[1:] for v in pair
    )
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed", row.outcome
    truth = env.truth(incident)
    assert (truth["classification"], truth["determination"]) == pair
    rows = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId "
        "| project ModifiedBy, Classification"
    )
    assert [r[0] for r in rows.rows] == ["dana@contoso.com"]
    writes = env.writes()
    env.cycle()
    assert env.writes() == writes  # the version read back is not taken for a new change


def test_an_edit_of_one_half_of_the_pair_keeps_defenders_other_half_however_graph_spells_it(
    make_env: Any,
) -> None:
    """Some of Graph's answers spell enum values in PascalCase and determinations under the
    incident page's older names ("Clean" for notMalicious; microsoft-apis.md §2.3), as the
    emulator's reads do with ``respelled_rate``. An edit naming one half of the pair keeps
    the other half Defender holds: closing a false positive keeps its notMalicious (it was
    overwritten with ``other``), and a new determination for a "TruePositive" is accepted (it
    was refused as not going with that classification)."""
    env = make_env(faults="respelled_rate=1")
    clean, malware = [s.id for s in env.hub.list_incidents(limit=200) if s.status == "active"][:2]
    env.portal(clean, classification="falsePositive", determination="notMalicious")
    env.portal(malware, classification="truePositive", determination="malware")
    env.cycle()
    stored = env.hub.get_incident(env.tenant.tenant_id, clean)
    assert stored is not None
    assert (stored.raw["classification"], stored.raw["determination"]) == ("FalsePositive", "Clean")

    env.edit(clean, status="resolved", classification="falsePositive")
    env.edit(malware, determination="phishing")
    env.cycle()
    assert [env.truth(clean)[k] for k in ("status", "classification", "determination")] == [
        "resolved",
        "falsePositive",
        "notMalicious",
    ]
    assert [env.truth(malware)[k] for k in ("classification", "determination")] == [
        "truePositive",
        "phishing",
    ]
    assert {e.state for e in env.hub.edits(tenant_id=env.tenant.tenant_id)} == {"confirmed"}


def test_a_write_defender_applies_to_another_incident_is_not_confirmed(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third party reports that Graph applies an update of a merged incident to the
    survivor (microsoft-apis.md §1.6, unverified). Merged between the pusher's read and its
    PATCH, the answer is then the survivor's record: the edit is not confirmed on the
    incident the user edited, and its outcome names the survivor."""
    env = make_env()
    source, survivor = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    target = next(iter(env.pusher.targets.values()))
    real_patch = target.api.patch_incident

    def merged_meanwhile(entity_id: str, body: Any) -> Any:
        env.server.emulator.store(env.tenant.tenant_id).apply(Merge(entity_id, survivor))
        return real_patch(survivor, body)  # as the third party says Graph does

    monkeypatch.setattr(target.api, "patch_incident", merged_meanwhile)
    (edit,) = env.edit(source, owner="late@contoso.com")
    env.pusher.push_due()
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "failed", row.outcome
    assert survivor in str(row.outcome)
    # The survivor's version that carries the write reads back as the user's change.
    env.cycle()
    rows = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{survivor}' "
        "| summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project ModifiedBy"
    )
    assert [r[0] for r in rows.rows] == ["alice@contoso.com"]


def test_a_refused_patch_sends_no_more_halves_once_an_answer_comes_from_a_survivor(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph refuses Alice's PATCH of owner and status (400), so it is sent again in halves;
    the incident is merged away before the first half, whose answer is the survivor's. The
    second half is not sent (Graph would apply it to the survivor too): the next push finds
    the merge and fails it as merged away."""
    env = make_env()
    source, survivor = [s.id for s in env.hub.list_incidents(limit=50) if s.status == "active"][:2]
    target = next(iter(env.pusher.targets.values()))
    real_patch = target.api.patch_incident
    sent: list[tuple[str, ...]] = []

    def refused_then_merged(entity_id: str, body: Any) -> Any:
        sent.append(tuple(sorted(body)))
        if len(sent) == 1:
            raise BadRequestError("Graph answered 400", "BadRequest: Invalid value for 'status'.")
        if len(sent) == 2:
            env.server.emulator.store(env.tenant.tenant_id).apply(Merge(entity_id, survivor))
            return real_patch(survivor, body)  # as the third party says Graph does
        return real_patch(entity_id, body)

    monkeypatch.setattr(target.api, "patch_incident", refused_then_merged)
    ids = env.edit(source, owner="late@contoso.com", status="inProgress")
    env.pusher.push_due()
    assert len(sent) == 2  # the whole PATCH, then one half: never the other half
    env.cycle()
    env.pusher.push_due()
    assert len(sent) == 2
    rows = env.hub.edits(ids=ids)
    assert {r.state for r in rows} == {"failed"}
    assert all(survivor in str(r.outcome) for r in rows), [r.outcome for r in rows]


def test_an_edit_made_before_a_standing_conflict_does_not_replace_it(make_env: Any) -> None:
    """Alice's owner edit waits in conflict (policy manual). An edit of the same field that
    Bob made before hers, queued only now (read back late from Sentinel, say), is not the
    user's latest decision: Alice's conflict stays to be resolved and her value reaches
    Defender; Bob's older edit is set aside. An edit made after hers replaces it."""
    env = make_env("manual")
    incident = env.open_incident()
    (alice,) = env.edit(incident, owner="alice@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    (row,) = env.hub.edits(ids=[alice])
    assert row.state == "conflict"
    earlier = row.created_at - timedelta(minutes=5)
    (bob,) = env.edit(incident, author="bob@contoso.com", owner="bob@contoso.com", at=earlier)
    env.cycle()
    assert [r.id for r in env.hub.edits(states=["conflict"])] == [alice]  # `conflicts list`
    (older,) = env.hub.edits(ids=[bob])
    assert older.state == "replaced"
    assert env.truth(incident)["assignedTo"] == "portal@contoso.com"
    assert resolve(env.hub, alice, "workspace").state == "pending"
    env.cycle()
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"
    # An edit made after a standing conflict still replaces it (the user decided again).
    (carol,) = env.edit(incident, owner="carol@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    assert env.hub.edits(ids=[carol])[0].state == "conflict"
    (dave,) = env.edit(incident, author="dave@contoso.com", owner="dave@contoso.com")
    assert env.hub.edits(ids=[carol])[0].state == "replaced"
    env.cycle()
    assert env.hub.edits(ids=[dave])[0].state == "conflict"


@pytest.mark.parametrize("named", ["first", "last"])
def test_resolving_a_conflict_of_several_edits_of_one_field_settles_them_all(
    make_env: Any, named: str
) -> None:
    """Alice assigns the incident to herself, then, before the push, to Bob: one change of
    the owner. The portal assigned it meanwhile (policy manual): both edits wait in conflict.
    Resolved for the workspace on either edit, Bob's (the latest) goes to Defender and the
    other is replaced: nothing is left in `conflicts list`, and the workspace shows Bob."""
    env = make_env("manual")
    incident = env.open_incident()
    (first,) = env.edit(incident, owner="alice@contoso.com")
    (last,) = env.edit(incident, owner="bob@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    assert {r.state for r in env.hub.edits(ids=[first, last])} == {"conflict"}
    decided = resolve(env.hub, first if named == "first" else last, "workspace")
    assert (decided.id, decided.state) == (last, "pending")
    assert env.hub.edits(states=["conflict"]) == []  # `conflicts list`
    env.cycle()
    env.cycle()
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"
    states = {r.id: r.state for r in env.hub.edits(ids=[first, last])}
    assert states == {first: "replaced", last: "confirmed"}
    shown = current_view(env.hub, env.tenant.tenant_id, "incident", incident)
    assert shown is not None and shown["assignedTo"] == "bob@contoso.com"


def test_keeping_defenders_value_over_several_edits_of_one_field_drops_them_all(
    make_env: Any,
) -> None:
    """Alice's two owner edits wait in conflict with the portal's owner (policy manual).
    Resolved for Defender on her latest, both are overridden: nothing is left in `conflicts
    list`, Defender keeps the portal's owner, and the workspace shows it, not her first
    value."""
    env = make_env("manual")
    incident = env.open_incident()
    (first,) = env.edit(incident, owner="alice@contoso.com")
    (last,) = env.edit(incident, owner="bob@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    assert resolve(env.hub, last, "defender").state == "overridden"
    assert {r.state for r in env.hub.edits(ids=[first, last])} == {"overridden"}
    assert env.hub.edits(states=["conflict"]) == []  # `conflicts list`
    env.cycle()
    assert env.truth(incident)["assignedTo"] == "portal@contoso.com"
    shown = current_view(env.hub, env.tenant.tenant_id, "incident", incident)
    assert shown is not None and shown["assignedTo"] == "portal@contoso.com"


def test_a_conflict_with_an_owner_unassigned_in_the_portal_shows_it_and_resolves(
    make_env: Any,
) -> None:
    """Alice's owner edit meets the portal's owner (policy manual) and she takes the
    workspace's side; before the push the portal unassigns the incident: a conflict again,
    now with Defender's owner unset. `conflicts list` shows Defender's owner as unset, not
    the portal's from the first conflict, and taking the workspace's side writes Alice."""
    env = make_env("manual")
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.portal(incident, assignedTo="portal@contoso.com")
    env.cycle()
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, row.theirs) == ("conflict", "portal@contoso.com")
    assert resolve(env.hub, edit, "workspace").state == "pending"
    env.portal(incident, assignedTo=None)
    env.cycle()
    assert env.truth(incident).get("assignedTo") is None
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, row.theirs) == ("conflict", None)
    assert resolve(env.hub, edit, "workspace").state == "pending"
    env.cycle()
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_a_close_whose_classification_defender_refuses_fails_with_it_and_the_rest_land(
    make_env: Any,
) -> None:
    """Alice resolves, assigns, tags and classifies in one update; Defender refuses the
    classification (a pair outside the documented table) with 400. The close goes only with
    its classification (merge.close_classified): both fail, with Defender's message, where
    the user sees edits (the edit's outcome, the audit trail), and the incident is not left
    closed unclassified. The fields Defender takes (owner, tags, comment) are written."""
    env = make_env(faults="refused_pair_rate=1")
    incident = env.open_incident()
    before = env.truth(incident)
    ids = env.edit(
        incident,
        status="resolved",
        classification="truePositive",
        determination="apt",
        owner="alice@contoso.com",
        add_tags=("bec",),
        comment="Mailbox rule removed",
    )
    env.cycle()
    truth = env.truth(incident)
    assert truth["status"] == before["status"] != "resolved"
    assert truth["assignedTo"] == "alice@contoso.com"
    assert "bec" in truth["customTags"]
    assert [c["comment"] for c in truth["comments"]].count("Mailbox rule removed") == 1
    pair = (truth.get("classification"), truth.get("determination"))
    assert pair == (before.get("classification"), before.get("determination"))
    rows = {r.field: r for r in env.hub.edits(ids=ids)}
    refused = [rows.pop("classification"), rows.pop("status")]
    for row in refused:
        assert row.state == "failed"
        assert "Invalid value 'apt' for property 'determination'" in (row.outcome or "")
        trail = [a for a in env.hub.audit_tail(200) if a.detail.get("outbox") == row.id]
        assert trail[0].decision == "edit_refused"
        assert "Invalid value 'apt'" in trail[0].detail["reason"]
    assert "refused together with classification" in (refused[1].outcome or "")
    assert {field: r.state for field, r in rows.items()} == dict.fromkeys(rows, "confirmed")
    # Settled: the next cycles write nothing, and the workspace shows Defender's values.
    writes = env.writes()
    env.cycle()
    env.cycle()
    assert env.writes() == writes
    current = env.hub.get_incident(env.tenant.tenant_id, incident)
    assert current is not None and current.assigned_to == "alice@contoso.com"
    assert current.status == before["status"]


@pytest.mark.parametrize(
    ("portal", "ends"),
    [
        # another analyst's verdict meanwhile: the close goes with it, and the trail says so
        (("informationalExpectedActivity", "securityTesting"), "informationalExpectedActivity"),
        # the classification cleared meanwhile: the closer's goes with the close
        (("unknown", "unknown"), "falsePositive"),
    ],
)
def test_a_close_whose_classification_lost_never_closes_unclassified(
    make_env: Any, portal: tuple[str, str], ends: str
) -> None:
    """Two-way.md, "A close and its classification": status and classification are merged
    one by one, and with ``defender_wins`` the classification of a close-and-classify loses to
    a change made in the portal meanwhile; the close still goes, so it must go with a
    classification: Defender's when it has one, else the closer's."""
    env = make_env("defender_wins")
    incident = env.open_incident()
    env.portal(incident, classification="truePositive", determination="malware")
    env.cycle()
    status, classification = env.edit(
        incident, status="resolved", classification="falsePositive", determination="notMalicious"
    )
    env.portal(incident, classification=portal[0], determination=portal[1])
    env.cycle()
    truth = env.truth(incident)
    assert truth["status"] == "resolved"
    assert truth["classification"] == ends and truth["classification"] != "unknown"
    (row,) = env.hub.edits(ids=[classification])
    trail = [a for a in env.hub.audit_tail(200) if a.detail.get("outbox") == classification]
    if ends == "falsePositive":
        assert row.state == "confirmed"
        (pushed,) = [a for a in trail if a.decision == "pushed"]
        assert "the closer's goes with the close" in pushed.detail["merge"]
    else:
        assert row.state == "overridden"
        (lost,) = [a for a in trail if a.decision == "conflict_defender_won"]
        assert "the close goes with Defender's classification" in lost.detail["reason"]
    assert env.hub.edits(ids=[status])[0].state == "confirmed"


def test_a_close_alone_on_a_classification_cleared_meanwhile_fails_with_the_reason(
    make_env: Any,
) -> None:
    env = make_env("latest_wins")
    incident = env.open_incident()
    env.portal(incident, classification="truePositive", determination="malware")
    env.cycle()
    (status,) = env.edit(incident, status="resolved")  # closed with the classification shown
    env.portal(incident, classification="unknown", determination="unknown")
    env.cycle()
    truth = env.truth(incident)
    assert truth["status"] != "resolved" and truth["classification"] == "unknown"
    (row,) = env.hub.edits(ids=[status])
    assert row.state == "failed"
    (refused,) = [
        a
        for a in env.hub.audit_tail(200)
        if a.detail.get("outbox") == status and a.decision == "edit_refused"
    ]
    assert "needs a classification" in refused.detail["reason"]
