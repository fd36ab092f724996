"""The pusher when Graph fails in particular ways, against the emulator in one process: a
comment whose POST never left or whose answer was lost, a 409 on a comment or a PATCH, reads
that keep failing, a PATCH that landed though its answer was lost (and was undone in the
portal, or not), one that never landed (also after an earlier edit of the field landed), and a
permission granted while the service runs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import twowayenv

from xdrsync.config import ConflictPolicies, load_config
from xdrsync.emulator.activity import NewAlert
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.errors import EditRefusedError
from xdrsync.graph.retry import RetryPolicy
from xdrsync.graph.security import DefenderApi
from xdrsync.sync.engine import sync_tenant
from xdrsync.twoway.pusher import MAX_CONFLICT_TRIES
from xdrsync.twoway.submit import resolve
from xdrsync.workspace import Workspace, inbound_settings

TEXT = "False positive - closing"
CONFLICT = {
    "error": {"code": "Conflict", "message": "Newer version of resource exists. Data was not saved"}
}

#: What a request does instead of reaching the emulator: None lets it through.
Fault = Callable[[httpx.Request, httpx.BaseTransport], httpx.Response | None]


class Faulty(httpx.BaseTransport):
    """Between the Graph client and the emulator: ``fault`` decides each request's fate."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.fault: Fault | None = None
        self.hits = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.fault is not None:
            answer = self.fault(request, self.inner)
            if answer is not None:
                self.hits += 1
                return answer
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def posting_comment(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/comments")


def patching(request: httpx.Request) -> bool:
    return request.method == "PATCH"


def reading_one_incident(request: httpx.Request) -> bool:
    path = request.url.path
    return request.method == "GET" and re.search(r"/security/incidents/\d+$", path) is not None


@dataclass
class Env(twowayenv.Env):
    """With every request passing ``wire`` on its way to the emulator."""

    wire: Faulty
    config_file: Path

    def push_until_settled(self, ids: list[int], seconds: float = 20) -> None:
        """Push as the service does (every few ms) until none of ``ids`` is pending."""
        deadline = time.monotonic() + seconds
        while any(r.state == "pending" for r in self.hub.edits(ids=ids)):
            assert time.monotonic() < deadline, self.hub.edits(ids=ids)
            self.pusher.push_due()
            time.sleep(0.02)

    def portal_comment(self, incident_id: str, text: str, author: str) -> None:
        """A comment made in Defender by someone else (an analyst in the portal, an app)."""
        comment = {"comment": text, "createdByDisplayName": author}
        reply = httpx.post(
            f"{self.server.base_url}/_emulator/incidents/{incident_id}",
            json={"comments": [comment]},
            timeout=30,
        )
        reply.raise_for_status()

    def portal_edit(self, incident_id: str, **fields: Any) -> None:
        """A change made in Defender by someone else (an analyst in the portal)."""
        reply = httpx.post(
            f"{self.server.base_url}/_emulator/incidents/{incident_id}", json=fields, timeout=30
        )
        reply.raise_for_status()

    def defender_comments(self, incident_id: str, text: str) -> list[str]:
        """Who wrote each of Defender's comments with ``text``."""
        comments = self.truth(incident_id).get("comments") or ()
        return sorted(c["createdByDisplayName"] for c in comments if c["comment"] == text)

    def shown_comments(self, incident_id: str, text: str) -> list[tuple[str | None, str | None]]:
        """Each workspace comment with ``text``: Defender's author, and the workspace user."""
        rows = self.hub.list_comments(self.tenant.tenant_id, incident_id)
        return sorted(
            ((c.created_by, c.written_by) for c in rows if c.comment == text),
            key=lambda pair: (pair[0] or "", pair[1] or ""),
        )

    @property
    def app(self) -> str:
        return f"API-App:{self.config.tenants[0].client_id}"


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def _make(**settings: Any) -> Env:
        server = EmulatorServer(settings_for(seed=11, incidents=12, **settings)).start()
        folder = tmp_path / f"env{len(made)}"
        config_file = write_client_config(
            folder,
            server.base_url,
            server.emulator.settings.tenants,
            workspace="ws",
            sync={"poll_interval_seconds": 0.5, "lookback_seconds": 60, "max_attempts": 4},
            rate_limit_per_minute=6000,
        )
        with config_file.open("a") as out:
            out.write("[two_way]\nretry_seconds = 0.05\n")
        config = load_config(config_file)
        workspace = Workspace.open(config)
        pusher = workspace.pusher()  # what `xdrsync run` builds when it starts
        (api,) = [target.api for target in pusher.targets.values()]
        assert isinstance(api, DefenderApi)
        # Every request between the client and the emulator passes ``Faulty``; one attempt
        # per call, so that a refused connection is not slept through in retries.
        http = api.client._http
        wire = Faulty(http._transport)
        http._transport = wire
        api.client.policy = RetryPolicy(max_attempts=1)
        env = Env(server, config, workspace, pusher, wire, config_file)
        made.append(env)
        env.cycle()
        return env

    yield _make
    for env in made:
        env.close()


# -- A: a comment matched to someone else's with the same text ----------------------------


def test_a_comment_whose_post_never_left_is_posted_and_not_taken_for_another_apps(
    make_env: Callable[..., Env],
) -> None:
    """The POST meets a refused connection (it never left). Meanwhile another integration
    posts the same text in Defender. When the network is back, Alice's comment is posted:
    the failed try proved nothing was sent, so nothing in Defender is taken for it."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, comment=TEXT)

    def refused(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if posting_comment(request):
            raise httpx.ConnectError("connection refused", request=request)
        return None

    env.wire.fault = refused
    env.pusher.push_due()
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "pending" and "not sent" in (row.outcome or "")
    env.portal_comment(incident, TEXT, "API-App:Contoso SOAR")
    env.wire.fault = None
    env.push_until_settled([edit])
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed"
    assert env.defender_comments(incident, TEXT) == sorted(["API-App:Contoso SOAR", env.app])
    assert env.shown_comments(incident, TEXT) == sorted(
        [("API-App:Contoso SOAR", None), (env.app, "alice@contoso.com")]
    )


def test_a_comment_whose_answer_was_lost_is_not_matched_to_a_portal_analysts(
    make_env: Callable[..., Env],
) -> None:
    """The POST times out without reaching Defender, so it may have landed. Bob wrote the
    same text in the portal a minute earlier. The next try looks for Alice's comment among
    those our app posted: Bob's is his, and Alice's is posted, once, under the app."""
    env = make_env()
    incident = env.open_incident()
    env.portal_comment(incident, TEXT, "bob@contoso.com")
    (edit,) = env.edit(incident, comment=TEXT)

    def lost(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if posting_comment(request):
            raise httpx.ReadTimeout("no answer", request=request)
        return None

    env.wire.fault = lost
    env.pusher.push_due()
    assert env.hub.edits(ids=[edit])[0].state == "pending"
    env.wire.fault = None
    env.push_until_settled([edit])
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed"
    assert env.defender_comments(incident, TEXT) == sorted(["bob@contoso.com", env.app])
    assert env.shown_comments(incident, TEXT) == sorted(
        [("bob@contoso.com", None), (env.app, "alice@contoso.com")]
    )


def test_a_comment_that_landed_though_its_answer_was_lost_is_found_not_posted_again(
    make_env: Callable[..., Env],
) -> None:
    """Defender took the POST but the answer never came: the next try finds the comment our
    app posted and confirms it, so it appears once on each side."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, comment=TEXT)

    def landed(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if posting_comment(request):
            inner.handle_request(request).close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return None

    env.wire.fault = landed
    env.pusher.push_due()
    env.wire.fault = None
    env.push_until_settled([edit])
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed"
    assert env.defender_comments(incident, TEXT) == [env.app]
    assert env.shown_comments(incident, TEXT) == [(env.app, "alice@contoso.com")]


# -- B: 409 Conflict, and how long a failing record waits ---------------------------------


def conflict_on(match: Callable[[httpx.Request], Any], times: int | None = None) -> Fault:
    """A 409 for the requests ``match`` takes (the first ``times`` of them, or all)."""
    answered = [0]

    def fault(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if match(request) and (times is None or answered[0] < times):
            answered[0] += 1
            return httpx.Response(409, json=CONFLICT)
        return None

    return fault


def test_a_comment_defender_answers_409_fails_alone_and_the_owner_still_goes(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    incident = env.open_incident()
    env.wire.fault = conflict_on(posting_comment)
    owner, comment = env.edit(incident, owner="bob@contoso.com", comment="hello")

    env.pusher.push_due()
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"
    assert env.hub.edits(ids=[owner])[0].state == "confirmed"

    env.push_until_settled([comment])
    (row,) = env.hub.edits(ids=[comment])
    assert row.state == "failed"
    assert "409" in (row.outcome or "") and "Data was not saved" in (row.outcome or "")
    assert env.wire.hits == MAX_CONFLICT_TRIES
    assert "hello" not in [c["comment"] for c in env.truth(incident).get("comments") or ()]


def test_a_patch_defender_keeps_answering_409_ends_failed_after_a_few_tries(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident)["assignedTo"]
    env.wire.fault = conflict_on(patching)
    (edit,) = env.edit(incident, owner="bob@contoso.com")

    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "failed"
    assert "409" in (row.outcome or "") and f"{MAX_CONFLICT_TRIES} tries" in (row.outcome or "")
    assert env.wire.hits == MAX_CONFLICT_TRIES
    assert env.truth(incident)["assignedTo"] == before
    trail = [a.decision for a in env.hub.audit_tail(300) if a.detail.get("outbox") == edit]
    assert trail == ["rejected", *["push_retry"] * (MAX_CONFLICT_TRIES - 1), "edit_queued"]


def test_a_patch_answered_409_once_goes_through_on_the_next_try(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    incident = env.open_incident()
    env.wire.fault = conflict_on(patching, times=1)
    (edit,) = env.edit(incident, owner="bob@contoso.com")

    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"


def test_a_record_whose_read_keeps_failing_waits_longer_each_time(
    make_env: Callable[..., Env],
) -> None:
    """Graph answers 503 to every read of the incident: the edit never gets as far as a
    write, and still each try counts, and the wait doubles."""
    env = make_env()
    incident = env.open_incident()

    def down(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        return httpx.Response(503) if reading_one_incident(request) else None

    env.wire.fault = down
    (edit,) = env.edit(incident, owner="bob@contoso.com")
    waits: list[float] = []
    for tries in range(1, 5):
        row = env.hub.edits(ids=[edit])[0]
        if row.next_attempt_at is not None:
            time.sleep(max(0.0, (_aware(row.next_attempt_at) - _now()).total_seconds()) + 0.01)
        env.pusher.push_due()
        row = env.hub.edits(ids=[edit])[0]
        assert row.state == "pending" and row.attempts == tries
        assert row.next_attempt_at is not None
        waits.append((_aware(row.next_attempt_at) - _now()).total_seconds())
    assert all(later > 1.5 * earlier for earlier, later in itertools.pairwise(waits)), waits

    env.wire.fault = None
    env.push_until_settled([edit])
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- C: a PATCH whose answer was lost ------------------------------------------------------


@dataclass
class AnswerLost:
    """A fault: the first PATCH reaches Defender, then ``meanwhile`` runs (a change made in
    Defender before any second try), and the answer never comes (a read timeout); later
    PATCHes go through. ``sent`` holds every PATCH body sent."""

    meanwhile: Callable[[], object] = lambda: None
    before: Callable[[], object] = lambda: None  # a change in Defender just before it lands
    sent: list[str] = dataclasses.field(default_factory=list)

    def __call__(self, request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if not patching(request):
            return None
        self.sent.append(request.content.decode())
        if len(self.sent) > 1:
            return None
        self.before()
        inner.handle_request(request).close()
        self.meanwhile()
        raise httpx.ReadTimeout("answer lost", request=request)


@dataclass
class Unavailable:
    """A fault: the first PATCH never reaches Defender; ``meanwhile`` runs (a change made in
    Defender before any second try) and it is answered 503; later PATCHes go through."""

    meanwhile: Callable[[], object] = lambda: None
    sent: int = 0

    def __call__(self, request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if not patching(request):
            return None
        self.sent += 1
        if self.sent > 1:
            return None
        self.meanwhile()
        return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})


def read_defender(env: Env) -> None:
    """The service's inbound read of Defender, without a push."""
    settings = inbound_settings(env.config)
    for source in env.workspace.sources():
        assert sync_tenant(env.hub, source, settings).ok


def latest_row(env: Env, incident: str, columns: str) -> tuple[Any, ...]:
    """The incident's latest SecurityIncident row, these columns of it."""
    rows = env.workspace.logs.query(
        f"SecurityIncident | where ProviderIncidentId == '{incident}'"
        f" | summarize arg_max(TimeGenerated, *) by ProviderIncidentId | project {columns}"
    ).rows
    (row,) = rows
    return tuple(row)


def test_a_patch_whose_answer_was_lost_is_not_resent_over_a_later_portal_change(
    make_env: Callable[..., Env],
) -> None:
    """Defender applies Alice's PATCH, but its answer is lost (a read timeout). Before any
    second try, Bob assigns the incident to himself in the portal. Sending the same PATCH
    again would silently undo Bob's later change. The next try reads the record instead,
    finds Bob's change made after Alice's edit, and the field's policy (latest wins) keeps
    it: Alice's edit ends overridden, on record, and Defender keeps Bob."""
    env = make_env()
    (api,) = [target.api for target in env.pusher.targets.values()]
    assert isinstance(api, DefenderApi)
    api.client.policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    lost = AnswerLost(lambda: env.portal_edit(incident, assignedTo="bob@contoso.com"))

    env.wire.fault = lost
    env.pusher.push_due()
    assert len(lost.sent) == 1, lost.sent
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"
    assert env.hub.edits(ids=[edit])[0].state == "pending"

    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, env.truth(incident)["assignedTo"]) == ("overridden", "bob@contoso.com")
    assert len(lost.sent) == 1, lost.sent


def test_a_patch_whose_answer_was_lost_is_not_resent_over_a_portal_undo(
    make_env: Callable[..., Env],
) -> None:
    """Defender applies Alice's PATCH, its answer is lost, and Bob puts the owner back in the
    portal, to the value Alice had seen, before any second try. Defender's owner then reads as
    unchanged since Alice looked: sending the same PATCH again would silently undo Bob's later
    change. The next try finds the record newer than the write and differing in nothing
    visible from before it: the write may have landed and been undone, or never landed under
    a version Defender made on its own. Neither writing again nor giving up is safe to choose
    alone: it is a conflict for the user, and Bob's value stays meanwhile."""
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident).get("assignedTo")
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    lost = AnswerLost(lambda: env.portal_edit(incident, assignedTo=before))

    env.wire.fault = lost
    env.pusher.push_due()
    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, env.truth(incident).get("assignedTo")) == ("conflict", before)
    assert len(lost.sent) == 1, lost.sent


@pytest.mark.parametrize("respelled", [False, True], ids=["comments-now", "comments-older"])
def test_a_lost_patch_sent_with_a_comment_is_not_resent_over_a_portal_undo(
    make_env: Callable[..., Env], respelled: bool
) -> None:
    """As above, with a comment posted in the same push (comments go first): our own comment
    is no change of anyone's, in either shape Graph's documented answers give comments
    (``{createdByDisplayName, createdDateTime}``, or the list and update examples' older
    ``{createdBy, createdTime}``, which the emulator's respelled reads serve). Taken for
    someone's change, it hid the undo, and Alice's owner was written over Bob's."""
    env = make_env(faults="respelled_rate=1" if respelled else None)
    incident = env.open_incident()
    before = env.truth(incident).get("assignedTo")
    edits = env.edit(incident, owner="alice@contoso.com", comment="taking this one")
    lost = AnswerLost(lambda: env.portal_edit(incident, assignedTo=before))

    env.wire.fault = lost
    env.pusher.push_due()
    env.push_until_settled(edits)
    owner = next(r for r in env.hub.edits(ids=edits) if r.field != "comment")
    assert (owner.state, env.truth(incident).get("assignedTo")) == ("conflict", before)
    assert len(lost.sent) == 1, lost.sent


def test_a_write_that_never_landed_under_a_version_defender_made_is_not_given_up(
    make_env: Callable[..., Env],
) -> None:
    """The PATCH answers 503 and is not applied; before the next try Defender makes a version
    that changes nothing visible (an alert updated, an automation's save). That looks like a
    write landed and undone, and the edit must not be settled as overridden by it: it is a
    conflict the user settles, and settled for the workspace the owner is written."""
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident).get("assignedTo")
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    store = env.server.emulator.store(env.tenant.tenant_id)

    def touched() -> None:
        with store.lock:  # Defender's own version of the incident, nothing visible changed
            store._touched(store._get(incident), store._clock())

    env.wire.fault = Unavailable(touched)
    env.pusher.push_due()
    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, env.truth(incident).get("assignedTo")) == ("conflict", before)

    resolve(env.hub, edit, "workspace")
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_a_lost_patch_the_hub_read_landed_is_not_resent_over_a_portal_undo_and_comment(
    make_env: Callable[..., Env],
) -> None:
    """As above, but the service reads Alice's value from Defender before Bob undoes it, and
    Bob comments too: the record no longer differs from before the write in the owner alone,
    and the version the hub read is what shows the write landed. Bob's value stays."""
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident).get("assignedTo")
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.wire.fault = lost = AnswerLost()
    env.pusher.push_due()
    read_defender(env)
    env.portal_comment(incident, "taking this back", "bob@contoso.com")
    env.portal_edit(incident, assignedTo=before)

    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, env.truth(incident).get("assignedTo")) == ("overridden", before)
    assert len(lost.sent) == 1, lost.sent


def test_a_later_edit_whose_patch_never_landed_is_sent_again_after_an_earlier_one_landed(
    make_env: Callable[..., Env],
) -> None:
    """Alice assigns the incident to herself: Defender applies the PATCH, its answer is lost.
    She reassigns it to Bob; the next push finds her write landed and PATCHes Bob, which
    Defender answers 503 without applying it. Nobody changed the incident since Alice's
    write, which went out before Bob's: Bob's write never landed, and goes again (under
    latest_wins) instead of waiting in conflict as if it had been undone."""
    env = make_env()
    incident = env.open_incident()
    patches: list[str] = []

    def fault(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if not patching(request):
            return None
        patches.append(request.content.decode())
        if len(patches) == 1:  # Alice's PATCH lands; its answer is lost
            inner.handle_request(request).close()
            raise httpx.ReadTimeout("answer lost", request=request)
        if len(patches) == 2:  # Bob's is refused with 503, not applied
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})
        return None

    env.wire.fault = fault
    (alice,) = env.edit(incident, owner="alice@contoso.com")
    env.pusher.push_due()
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"
    (bob,) = env.edit(incident, owner="bob@contoso.com")
    env.pusher.push_due()
    assert len(patches) == 2 and "bob@contoso.com" in patches[1], patches
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"
    env.push_until_settled([alice, bob])
    states = {r.id: r.state for r in env.hub.edits(ids=[alice, bob])}
    assert states == {alice: "confirmed", bob: "confirmed"}
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"


def test_a_patch_that_never_landed_is_sent_again_though_the_portal_changed_another_field(
    make_env: Callable[..., Env],
) -> None:
    """Defender answers Alice's PATCH 503 without applying it, and Bob raises the severity
    meanwhile. The record changed since the write went out, but in another field: nothing
    says the write landed, and Alice's owner is written on the next try, not lost to Bob's
    unrelated change."""
    env = make_env()
    incident = env.open_incident()
    severity = env.truth(incident)["severity"]
    other = "low" if severity != "low" else "high"
    (edit,) = env.edit(incident, owner="alice@contoso.com")

    env.wire.fault = Unavailable(lambda: env.portal_edit(incident, severity=other))
    env.pusher.push_due()
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert (env.truth(incident)["assignedTo"], env.truth(incident)["severity"]) == (
        "alice@contoso.com",
        other,
    )


def test_a_patch_that_never_landed_writes_the_field_the_portal_left_alone(
    make_env: Callable[..., Env],
) -> None:
    """Alice sets the owner and the status in one PATCH; Defender answers 503 without
    applying it, and Bob assigns Carol meanwhile. Bob's later owner wins (latest wins), but
    the status he left alone is not taken for a write of Alice's that he undid: it is written."""
    env = make_env()
    incident = env.open_incident()
    status = "inProgress" if env.truth(incident)["status"] == "active" else "active"
    owner, state = env.edit(incident, owner="alice@contoso.com", status=status)

    env.wire.fault = Unavailable(lambda: env.portal_edit(incident, assignedTo="carol@contoso.com"))
    env.pusher.push_due()
    env.push_until_settled([owner, state])
    states = {row.field: row.state for row in env.hub.edits(ids=[owner, state])}
    assert states == {"assignedTo": "overridden", "status": "confirmed"}
    truth = env.truth(incident)
    assert (truth["assignedTo"], truth["status"]) == ("carol@contoso.com", status)


def test_a_patch_that_never_landed_is_sent_again_though_a_comment_of_ours_came_since(
    make_env: Callable[..., Env],
) -> None:
    """Defender answers Alice's PATCH 503 without applying it, and a comment of our app's
    (another user's, pushed while the owner waits its retry) makes a new version: that version
    is not taken for Alice's write undone, and her owner is written on the next try."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")

    env.wire.fault = Unavailable(lambda: env.portal_comment(incident, "looking into it", env.app))
    env.pusher.push_due()
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_a_patch_that_never_landed_is_sent_again_though_defender_correlated_an_alert(
    make_env: Callable[..., Env],
) -> None:
    """Defender answers Alice's PATCH 503 without applying it, then correlates a new alert
    into the incident (a new version, its properties as they were): the alerts it lists show
    that something else made the new version, and Alice's owner is written on the next try."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    store = env.server.emulator.store(env.tenant.tenant_id)

    def correlate() -> None:
        alert = {**env.truth(incident)["alerts"][0], "id": "da-correlated-after-the-send"}
        store.apply(NewAlert(incident, alert))

    env.wire.fault = Unavailable(correlate)
    env.pusher.push_due()
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_an_undone_lost_patch_under_manual_waits_and_goes_once_resolved(
    make_env: Callable[..., Env],
) -> None:
    """Under the manual policy Bob's undo of Alice's landed write (its answer lost) is a
    conflict; resolved for the workspace, Alice's owner is written once more and confirmed,
    not taken again for the write Bob undid."""
    env = make_env()
    env.pusher.policies = ConflictPolicies(owner="manual")
    incident = env.open_incident()
    before = env.truth(incident).get("assignedTo")
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.wire.fault = lost = AnswerLost(lambda: env.portal_edit(incident, assignedTo=before))
    env.pusher.push_due()
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "conflict"
    assert env.truth(incident).get("assignedTo") == before

    resolve(env.hub, edit, "workspace")
    env.push_until_settled([edit])
    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"
    assert len(lost.sent) == 2, lost.sent


def test_a_patch_that_landed_though_its_answer_was_lost_is_the_users_change(
    make_env: Callable[..., Env],
) -> None:
    """No one changes the incident meanwhile: the next try finds Alice's value in Defender
    and confirms it, and the version her write made reads back as her change (ModifiedBy),
    not as one made in Defender, as it would have had the answer come."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.wire.fault = lost = AnswerLost()
    env.pusher.push_due()
    env.push_until_settled([edit])
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert (row.state, len(lost.sent)) == ("confirmed", 1)
    modified_by, owner = latest_row(env, incident, "ModifiedBy, Owner")
    assert modified_by == "alice@contoso.com"
    assert "alice@contoso.com" in str(owner)


def test_a_landed_patch_with_a_comment_of_the_same_push_is_the_users_change(
    make_env: Callable[..., Env],
) -> None:
    """Closing with a comment: the push posts the comment, then the PATCH lands and its
    answer is lost. The version holds only Alice's doing (her comment, her fields)."""
    env = make_env()
    incident = env.open_incident()
    edits = env.edit(
        incident,
        status="resolved",
        classification="falsePositive",
        determination="other",
        comment="closing: benign",
    )
    env.wire.fault = AnswerLost()
    env.pusher.push_due()
    env.push_until_settled(edits)
    env.cycle()

    assert {row.state for row in env.hub.edits(ids=edits)} == {"confirmed"}
    assert latest_row(env, incident, "ModifiedBy") == ("alice@contoso.com",)


def test_a_landed_patch_stays_defenders_when_the_portal_changed_another_field_before_it(
    make_env: Callable[..., Env],
) -> None:
    """Bob raises the severity in the portal just before Alice's write lands (its answer
    lost). The version Alice's write made holds Bob's change too: it is not hers."""
    env = make_env()
    incident = env.open_incident()
    severity = env.truth(incident)["severity"]
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    other = "low" if severity != "low" else "high"
    env.wire.fault = AnswerLost(before=lambda: env.portal_edit(incident, severity=other))
    env.pusher.push_due()
    env.push_until_settled([edit])
    env.cycle()

    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    assert env.truth(incident)["severity"] == other
    assert latest_row(env, incident, "ModifiedBy") != ("alice@contoso.com",)


def test_a_landed_patch_stays_defenders_when_defender_changed_the_incident_after_it(
    make_env: Callable[..., Env],
) -> None:
    """Alice's write lands, its answer is lost, and Defender then correlates a new alert into
    the incident (it bumps the version and leaves the last modifier as it was). That version
    holds Defender's change too: it is not credited to Alice."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    store = env.server.emulator.store(env.tenant.tenant_id)

    def correlated() -> None:
        alert = {**env.truth(incident)["alerts"][0], "id": "da-correlated-after-the-write"}
        store.apply(NewAlert(incident, alert))

    env.wire.fault = AnswerLost(correlated)
    env.pusher.push_due()
    env.push_until_settled([edit])
    env.cycle()

    assert env.hub.edits(ids=[edit])[0].state == "confirmed"
    modified_by, alerts = latest_row(env, incident, "ModifiedBy, array_length(AlertIds)")
    assert alerts == len(env.truth(incident)["alerts"])
    assert modified_by != "alice@contoso.com"


# -- D: a permission granted while the service runs ---------------------------------------


def test_a_permission_granted_and_checked_is_used_by_the_running_pusher(
    make_env: Callable[..., Env],
) -> None:
    """The app could only read: `update` refuses and says to grant the permission and run
    `xdrsync check`. The admin grants it, `check` records it; the service's pusher, started
    before all that, then writes the next edit without a restart."""
    env = make_env(read_only_tenants=[0])
    incident = env.open_incident()
    with pytest.raises(EditRefusedError, match=r"then run `xdrsync check`"):
        env.edit(incident, owner="alice@contoso.com")

    emulator = env.server.emulator  # admin consent: the app now holds ReadWrite
    for specs in (emulator.issuer_keys(), emulator.tenants):
        for key, spec in list(specs.items()):
            specs[key] = dataclasses.replace(spec, read_only=False)
    done = subprocess.run(
        [sys.executable, "-m", "xdrsync", "check", "--config", str(env.config_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "two-way sync on" in done.stdout

    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.pusher.push_due()
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed", row.outcome
    assert env.truth(incident)["assignedTo"] == "alice@contoso.com"


def test_an_edit_made_earlier_but_queued_later_is_not_the_one_written(
    make_env: Callable[..., Env],
) -> None:
    """A Sentinel analyst assigns Ann a minute ago; a console user assigns Carol now; the
    read-back queues Ann's edit after Carol's, dated when it was made. The later edit is the
    value Defender gets."""
    env = make_env()
    incident = env.open_incident()
    (later,) = env.edit(incident, owner="carol@contoso.com")
    made = datetime.now(UTC) - timedelta(minutes=1)
    (earlier,) = env.edit(
        incident, author="Ann (Microsoft Sentinel)", owner="ann@contoso.com", at=made
    )
    env.push_until_settled([later, earlier])
    assert env.truth(incident)["assignedTo"] == "carol@contoso.com"
    assert env.hub.edits(ids=[later])[0].state == "confirmed"


def test_an_edit_waiting_for_its_retry_is_not_overtaken_by_a_later_one_in_the_next_batch(
    make_env: Callable[..., Env],
) -> None:
    """Alice tags an incident, Bob edits another, Alice removes the tag again: three edits
    due together, read two at a time. The first read of Alice's incident meets a 503, so
    her tag waits for its retry; her removal, in the next batch of the same push, must not
    go ahead of it alone (it would find no tag to remove, and the tag would then be added
    after it). The two go together once the retry is due: the tag ends removed."""
    env = make_env()
    incident = env.open_incident()
    other = next(
        s.id
        for s in env.hub.list_incidents(limit=200)
        if s.id != incident and s.status in ("active", "inProgress") and not s.merged_into
    )
    failed = [0]

    def once(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        path = request.url.path
        if reading_one_incident(request) and path.endswith(f"/{incident}") and not failed[0]:
            failed[0] += 1
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})
        return None

    env.wire.fault = once
    (add,) = env.edit(incident, add_tags=("contained",))
    (owner,) = env.edit(other, author="bob@contoso.com", owner="bob@contoso.com")
    (remove,) = env.edit(incident, remove_tags=("contained",))
    env.pusher.push_due(batch=2)
    assert failed == [1]
    env.push_until_settled([add, owner, remove])
    assert "contained" not in (env.truth(incident).get("customTags") or [])
    assert env.truth(other)["assignedTo"] == "bob@contoso.com"


# -- C: Graph refuses some fields of a PATCH ------------------------------------------------


def test_fields_graph_refuses_fail_alone_each_with_its_message_and_the_rest_land(
    make_env: Callable[..., Env],
) -> None:
    """Graph answers 400 to any PATCH that sets the owner or the tags (its OData error
    names the property). Of Alice's four fields the status and the classification land;
    the owner and the tags fail, each with Graph's message about it. Nothing is tried
    again afterwards."""
    env = make_env()
    incident = env.open_incident()
    before = env.truth(incident)

    def refusing(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if not patching(request):
            return None
        for name in ("assignedTo", "customTags"):
            if name in json.loads(request.content):
                error = {"code": "BadRequest", "message": f"Invalid value for property '{name}'."}
                return httpx.Response(400, json={"error": error})
        return None

    env.wire.fault = refusing
    ids = env.edit(
        incident,
        status="inProgress",
        owner="bob@contoso.com",
        add_tags=("triaged",),
        classification="truePositive",
        determination="malware",
    )
    env.push_until_settled(ids)
    truth = env.truth(incident)
    assert truth["status"] == "inProgress"
    assert (truth["classification"], truth["determination"]) == ("truePositive", "malware")
    assert truth.get("assignedTo") == before.get("assignedTo")
    assert truth.get("customTags") == before.get("customTags")
    rows = {r.field: r for r in env.hub.edits(ids=ids)}
    assert {f: r.state for f, r in rows.items()} == {
        "status": "confirmed",
        "classification": "confirmed",
        "assignedTo": "failed",
        "customTags": "failed",
    }
    assert "Invalid value for property 'assignedTo'" in (rows["assignedTo"].outcome or "")
    assert "Invalid value for property 'customTags'" in (rows["customTags"].outcome or "")
    refused = {r.id for f, r in rows.items() if r.state == "failed"}
    trail = [a for a in env.hub.audit_tail(300) if a.detail.get("outbox") in refused]
    assert sorted(a.decision for a in trail) == ["edit_queued"] * 2 + ["edit_refused"] * 2
    hits = env.wire.hits
    env.cycle()
    env.pusher.push_due()
    assert env.wire.hits == hits  # settled: no PATCH is tried again


# -- E: review findings ---------------------------------------------------------------------


def test_a_value_another_app_set_before_any_attempt_is_not_credited_to_the_user(
    make_env: Callable[..., Env],
) -> None:
    """Alice's edit waits (the service has not pushed yet) while the MSSP's SOAR playbook, an
    app, assigns the incident to her in Defender. The push finds the value there and
    confirms the edit without a write; the version the playbook made is not hers: no attempt
    of hers ever went out."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, owner="alice@contoso.com")
    env.portal_edit(incident, assignedTo="alice@contoso.com", lastModifiedBy="API-App:Contoso SOAR")
    env.pusher.push_due()
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed", row.outcome
    assert latest_row(env, incident, "ModifiedBy") == ("API-App:Contoso SOAR",)


def test_a_permission_revoked_while_running_is_refused_up_front_after_the_first_403(
    make_env: Callable[..., Env],
) -> None:
    """The app could write when the service started; an admin then takes the permission away
    and the app's next token lacks it. The first edit fails with Graph's 403; the next one is
    refused by `update` itself, naming the permission, instead of being queued to fail too."""
    env = make_env()
    incident = env.open_incident()
    (first,) = env.edit(incident, owner="alice@contoso.com")
    env.pusher.push_due()  # the first push records the roles the app had then
    assert env.hub.edits(ids=[first])[0].state == "confirmed"

    emulator = env.server.emulator  # the write permission revoked
    for specs in (emulator.issuer_keys(), emulator.tenants):
        for key, spec in list(specs.items()):
            specs[key] = dataclasses.replace(spec, read_only=True)
    (target,) = env.pusher.targets.values()
    assert target.sign_in_again is not None
    target.sign_in_again()  # the token in hand expires: the next one lacks the permission

    (second,) = env.edit(incident, owner="bob@contoso.com")
    env.pusher.push_due()
    (row,) = env.hub.edits(ids=[second])
    assert row.state == "failed" and "SecurityIncident.ReadWrite.All" in str(row.outcome)
    with pytest.raises(EditRefusedError, match=r"then run `xdrsync check`"):
        env.edit(incident, owner="carol@contoso.com")


def test_a_single_409_after_an_outage_does_not_end_the_edit_failed(
    make_env: Callable[..., Env],
) -> None:
    """Graph is down for a few tries (its reads answer 503), then a write races another once
    (409). That is one conflict, not the fourth: the next try goes through."""
    env = make_env()
    incident = env.open_incident()
    outage = [0]
    conflict = conflict_on(patching, times=1)

    def fault(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if reading_one_incident(request) and outage[0] < MAX_CONFLICT_TRIES - 1:
            outage[0] += 1
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})
        return conflict(request, inner)

    env.wire.fault = fault
    (edit,) = env.edit(incident, owner="bob@contoso.com")
    env.push_until_settled([edit])
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed", row.outcome
    assert env.truth(incident)["assignedTo"] == "bob@contoso.com"


def test_a_comment_on_an_incident_defender_no_longer_has_ends_gone_not_refused(
    make_env: Callable[..., Env],
) -> None:
    """The incident aged out of Defender's retention: its comment's POST is answered 404. The
    edit ends as one whose record is gone (nothing for an operator to fix, so `sync --once`
    does not fail for it), as an edit whose read finds the record gone does."""
    env = make_env()
    incident = env.open_incident()

    def gone(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if posting_comment(request):
            body = {"error": {"code": "NotFound", "message": f"Incident {incident} not found"}}
            return httpx.Response(404, json=body)
        return None

    env.wire.fault = gone
    (edit,) = env.edit(incident, comment="still looking")
    report = env.pusher.push_due()
    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "failed"
    trail = [a.decision for a in env.hub.audit_tail(50) if a.detail.get("outbox") == edit]
    assert trail[0] == "gone", trail
    assert report.refused == 0


def test_a_comment_the_answer_does_not_list_is_still_shown_as_the_users(
    make_env: Callable[..., Env],
) -> None:
    """Defender takes the POST but its answer lists no comments (an answer cut short). The
    comment is there all the same: the workspace shows it as Alice's, once, as when the
    answer lists it, and not as one the app wrote on its own."""
    env = make_env()
    incident = env.open_incident()
    (edit,) = env.edit(incident, comment=TEXT)

    def short(request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if not posting_comment(request):
            return None
        inner.handle_request(request).close()
        return httpx.Response(200, json={"value": []})

    env.wire.fault = short
    env.pusher.push_due()
    env.wire.fault = None
    env.cycle()

    (row,) = env.hub.edits(ids=[edit])
    assert row.state == "confirmed"
    assert env.defender_comments(incident, TEXT) == [env.app]
    assert env.shown_comments(incident, TEXT) == [(env.app, "alice@contoso.com")]
