"""The Sentinel destination when things go wrong mid-batch: shutdown while ARM throttles or
hangs (the two-way read-back's calls too), rows Logs Ingestion refuses, and a stream failing
after another was accepted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from test_sentinel_dest_destination import CONFIG, ScriptedArm, _commit, _destination
from test_sentinel_dest_e2e import World, _incident
from test_sentinel_dest_e2e import world as world  # the fixture
from test_sentinel_dest_ingest import ENTRY, FakeClient, FakeTokens, _http_error

from xdrsync.config import SyncConfig
from xdrsync.destinations.runner import DestinationRunner, Fanout
from xdrsync.destinations.sentinel.arm import ListedPage
from xdrsync.destinations.sentinel.ingest import LogIngestor
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.destinations.sentinel.readback import SentinelReadback
from xdrsync.errors import RetriableError
from xdrsync.graph.pacing import Stopped, stop_on
from xdrsync.hub import Hub
from xdrsync.sync import engine
from xdrsync.sync.engine import SyncService

ALERTS = "Custom-XdrSecurityAlert"
EVIDENCE = "Custom-XdrAlertEvidence"

# -- shutdown while ARM answers 429 ---------------------------------------------------------


def _throttled(w: World) -> int:
    return int(w.http.get("/_emulator/stats").json()["throttled"].get("arm", 0))


def test_shutdown_ends_within_its_budget_while_arm_throttles(world: Callable[..., World]) -> None:
    """``xdrsync run`` stops its fan-out (``stop``) and drains it (``drain``) within their
    seconds even while ARM answers 429 with a Retry-After of a minute; what was not
    acknowledged is simply delivered after the next start."""
    w = world(rate_limit_per_minute=3)  # 3 ARM calls per sliding minute, then 429
    for n in range(10):
        w.commit(_incident(str(100 + n)))
    fanout = Fanout([w.runner]).start()
    fanout.wake()
    began = time.monotonic()
    while _throttled(w) == 0 and time.monotonic() - began < 30:
        time.sleep(0.2)
    assert _throttled(w), "ARM never throttled"

    took: list[float] = []

    def shut_down() -> None:
        start = time.monotonic()
        fanout.stop(2.0)
        fanout.drain(2.0)
        took.append(time.monotonic() - start)

    stopper = threading.Thread(target=shut_down, daemon=True)
    stopper.start()
    stopper.join(30)
    assert took, "shutdown still waiting after 30 s (ARM's Retry-After holds it)"
    assert took[0] < 6.0, took  # 2 s to stop + 2 s to drain, and a margin

    # Nothing acknowledged is missing in Sentinel, and nothing was skipped: the rest waits.
    position = w.hub.get_cursor(w.runner.name)
    assert position < w.hub.max_seq()
    names = {i["name"] for i in w.truth()["incidents"]}
    for change in w.hub.changes_after(0, 1000):
        if change.seq <= position and change.entity_type == "incident":
            assert incident_name(change.tenant_id, change.entity_id) in names
    assert w.hub.dead_letter_counts().get(w.runner.name, 0) == 0


def test_a_stop_ends_the_ingestion_sdks_retry_after_wait(world: Callable[..., World]) -> None:
    """The Logs Ingestion SDK honours a 429's Retry-After in its own retry loop: under the
    fan-out's stop, that wait ends at once too."""
    w = world(ingest_rate_limit_per_minute=1)
    ingestor = w.destination.ingestor
    assert ingestor is not None
    row = {"SystemAlertId": "a1", "XdrSeq": 1}
    assert ingestor.upload(ALERTS, [row]) == {}
    stop = threading.Event()
    ended: list[tuple[str, float]] = []

    def upload() -> None:
        start = time.monotonic()
        with stop_on(stop):
            try:
                ingestor.upload(ALERTS, [{**row, "XdrSeq": 2}])
            except Stopped:
                ended.append(("stopped", time.monotonic() - start))
                return
        ended.append(("uploaded", time.monotonic() - start))

    worker = threading.Thread(target=upload, daemon=True)
    worker.start()
    time.sleep(1.0)  # the SDK is waiting out the Retry-After (up to a minute)
    stop.set()
    worker.join(10)
    assert ended and ended[0][0] == "stopped" and ended[0][1] < 5, ended


def _reading_back(
    hub: Hub, readback: SentinelReadback, fanout: Fanout | None = None
) -> SyncService:
    """The service of `xdrsync run` with a two-way destination's read-back, and no tenant."""
    return SyncService(
        hub,
        [],
        None,  # type: ignore[arg-type]
        poll_interval=60,
        fanout=fanout,
        periodic=[("readback-sentinel", readback.poll, 0.01)],
    ).start()


def test_a_stop_ends_the_read_backs_wait_for_arms_retry_after_at_once(
    world: Callable[..., World],
) -> None:
    """ARM answers the two-way read-back's listing 429 with a Retry-After of up to a minute,
    waited out in-line: the service's stop ends that wait at once, as it ends the fan-out's
    and the pushers' (a thread still waiting at the deadline would be abandoned)."""
    w = world(rate_limit_per_minute=3)  # 3 ARM calls per sliding minute, then 429
    service = _reading_back(w.hub, SentinelReadback(w.destination, w.config, w.hub))
    began = time.monotonic()
    while _throttled(w) == 0 and time.monotonic() - began < 30:
        time.sleep(0.2)
    assert _throttled(w), "ARM never throttled"
    time.sleep(0.5)  # the read-back waits out the Retry-After

    began = time.monotonic()
    stopped = service.stop(timeout=5)
    took = time.monotonic() - began
    assert stopped, f"the read-back was still waiting at the stop's deadline ({took:.1f} s)"
    assert took < 2


#: How long the hung listing below takes to fail, as a request ends by its timeout.
REQUEST_TIMEOUT = 20.0


class _HungListing(ScriptedArm):
    """ARM whose listing hangs: a request on the wire, which no stop cuts short; it fails
    after ``REQUEST_TIMEOUT`` (``request_timeout_seconds``)."""

    def __init__(self) -> None:
        super().__init__()
        self.listing = threading.Event()
        self.timed_out = threading.Event()

    def list_page(self, filter_text: str, top: int) -> ListedPage:
        self.listing.set()
        self.timed_out.wait(REQUEST_TIMEOUT)
        raise RetriableError("ARM: the request timed out")


def test_a_read_back_inside_a_hung_request_holds_the_shutdown_no_longer_than_its_deadlines(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-back lists a page under the destination's lock, which every write takes too,
    and ARM's listing hangs. At the stop that thread is left inside its request, and the
    drain of what was committed gives up waiting for the lock at its deadline: the service
    stops within its seconds (the stop's, then the drain's), and the incident is written to
    Sentinel after the next start."""
    monkeypatch.setattr(engine, "DRAIN_SECONDS", 2.0)
    arm = _HungListing()
    destination = _destination(hub, arm)
    fanout = Fanout([DestinationRunner(hub, destination)], interval=3600)
    service = _reading_back(hub, SentinelReadback(destination, CONFIG, hub), fanout)
    try:
        assert arm.listing.wait(5)
        _commit(hub, _incident("1"))  # committed before the stop: the drain's to deliver
        began = time.monotonic()
        stopped = service.stop(timeout=1)
        took = time.monotonic() - began
    finally:
        arm.timed_out.set()
    assert not stopped  # the read-back is still inside its request: `run` exits at once
    assert took < 5, f"the stop took {took:.1f} s (the hung request: {REQUEST_TIMEOUT:g} s)"
    assert not arm.incidents and hub.get_cursor(destination.name) == 0  # nothing half done


# -- rows refused by Logs Ingestion -----------------------------------------------------------


def _refusing(bad: set[int]) -> FakeClient:
    def fail(chunk: list[Mapping[str, Any]]) -> Exception | None:
        hit = any(row["XdrSeq"] in bad for row in chunk)
        return _http_error(400, "InvalidPayload", "bad row") if hit else None

    return FakeClient(fail, size=1_000_000)  # our own chunks go whole, as to the service


def _deliver_until_done(
    ingestor: LogIngestor, rows: Sequence[dict[str, Any]], tries: int = 20
) -> tuple[dict[int, str], int]:
    """As the runner does: the same batch again after each ``RetriableError``."""
    for attempt in range(1, tries + 1):
        ingestor.begin_batch(0)
        try:
            return ingestor.upload(EVIDENCE, rows), attempt
        except RetriableError:
            continue
    raise AssertionError(f"the batch never ended in {tries} tries")


def _accepted(client: FakeClient, bad: set[int]) -> list[int]:
    return [
        row["XdrSeq"]
        for _, chunk, _ in client.calls
        if not any(r["XdrSeq"] in bad for r in chunk)
        for row in chunk
    ]


def test_healthy_rows_are_never_refused_when_the_search_takes_long() -> None:
    """3,200 evidence rows of which 4 are refused: only those 4 become dead letters, every
    other row lands exactly once, though finding them takes more than one try's uploads."""
    bad = {100, 900, 1700, 2500}
    client = _refusing(bad)
    ingestor = LogIngestor(ENTRY, SyncConfig(), FakeTokens(), client=client)  # type: ignore[arg-type]
    rows = [{"XdrSeq": n, "Text": "x" * 300} for n in range(3200)]
    refused, tries = _deliver_until_done(ingestor, rows)
    assert sorted(refused) == sorted(bad)
    accepted = _accepted(client, bad)
    assert sorted(accepted) == sorted(set(range(3200)) - bad)  # each once
    assert tries <= 3


def test_a_batch_of_bad_rows_only_still_ends() -> None:
    """Every row refused: the search spends twice the uploads at each try, so the batch ends
    (every row a dead letter) after a few tries instead of being retried for ever."""
    bad = set(range(800))
    client = _refusing(bad)
    ingestor = LogIngestor(ENTRY, SyncConfig(), FakeTokens(), client=client)  # type: ignore[arg-type]
    rows = [{"XdrSeq": n, "Text": "x" * 300} for n in range(800)]
    refused, tries = _deliver_until_done(ingestor, rows)
    assert sorted(refused) == sorted(bad)
    assert tries <= 8


# -- one stream failing after another was accepted ------------------------------------------


def test_a_failed_evidence_upload_does_not_send_the_alert_rows_twice(
    world: Callable[..., World],
) -> None:
    w = world()
    for n in range(5):
        w.commit(_incident(str(200 + n)))
    ingestor = w.destination.ingestor
    assert ingestor is not None
    real = ingestor.upload
    failures: list[str] = []

    def flaky(stream: str, rows: Sequence[dict[str, Any]]) -> dict[int, str]:
        if stream == EVIDENCE and not failures:
            failures.append(stream)
            raise RetriableError("upload to stream Custom-XdrAlertEvidence failed (503)")
        return real(stream, rows)

    ingestor.upload = flaky  # type: ignore[method-assign]
    with pytest.raises(RetriableError):
        w.publish()
    assert w.publish() == 10  # the batch, on its retry
    logs = w.truth()["logs"]
    alerts = Counter(row["XdrSeq"] for row in logs[ALERTS])
    evidence = Counter(row["XdrSeq"] for row in logs[EVIDENCE])
    assert len(alerts) == 5 and set(alerts.values()) == {1}, alerts
    assert len(evidence) == 5 and set(evidence.values()) == {1}, evidence
    assert w.destination.stats()["rows_not_resent"] == 5
    # A replay sends them again, as documented (the consumer dedupes on XdrSeq).
    w.deliver_again()
    again = Counter(row["XdrSeq"] for row in w.truth()["logs"][ALERTS])
    assert set(again.values()) == {2}


def test_our_rows_match_the_rule_the_emulator_declares(world: Callable[..., World]) -> None:
    """Every column of every row xdrsync sends is one the DCR declares, of its type: the
    emulator drops what is not (as the service does) and counts it."""
    w = world()
    w.commit(*(_incident(str(300 + n)) for n in range(3)))
    w.publish()
    stats = w.http.get("/_emulator/stats").json()
    assert stats["log_rows"][ALERTS] == 3
    assert stats["ingestion_dropped"] == {}


def test_the_defender_emulators_incidents_make_rows_the_rule_takes_whole(
    world: Callable[..., World],
) -> None:
    """Alerts with every kind of evidence the Defender emulator makes: no value dropped."""
    import httpx

    from xdrsync.emulator.server import EmulatorServer
    from xdrsync.emulator.service import settings_for
    from xdrsync.models import Incident

    with EmulatorServer(settings_for(seed=7, incidents=60)) as defender:
        truth = httpx.get(f"{defender.base_url}/_emulator/truth", timeout=60).json()["value"]
    w = world()
    w.commit(*(Incident.from_graph(payload) for payload in truth))
    while w.publish():
        pass
    stats = w.http.get("/_emulator/stats").json()
    assert stats["log_rows"][EVIDENCE] > 100, stats["log_rows"]
    assert stats["ingestion_dropped"] == {}
    assert w.hub.dead_letter_counts().get(w.runner.name, 0) == 0
