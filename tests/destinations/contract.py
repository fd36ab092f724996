"""The contract every destination adapter must pass, run by ``test_contract.py`` against each
one through a harness that can read back what the destination holds.

What a user of any destination is promised:
- every incident of the destination's tenants is there once, with its current fields, and
  every alert change is there (rows carry the change number);
- a crash between delivery and acknowledgement loses nothing and duplicates no incident
  (rows delivered twice carry the same change number, so a consumer can dedupe);
- an outage holds back only this destination; afterwards it catches up without loss;
- ``replay`` from a change number delivers again from there, converging to the same state;
- changes of tenants routed elsewhere never arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import pytest
from workload import TENANT_A, commit_alert_update, commit_workload

from xdrsync.destinations.base import Destination, Rejection
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.errors import RetriableError
from xdrsync.hub import ChangeRow, Hub


class Harness(Protocol):
    """A destination under test and a way to read back what it holds."""

    #: Rows are written exactly once (the destination keeps its position with its data);
    #: otherwise at least once, with the change number to dedupe by.
    exactly_once_rows: bool
    #: The tenants whose changes this destination takes (None: all).
    tenants: frozenset[str] | None

    def destination(self) -> Destination: ...
    def incidents(self) -> dict[tuple[str, str], dict[str, str]]:
        """(tenant id, Defender incident id) → {"title", "status"} as the destination holds it
        now, each incident once (a duplicate makes the harness fail)."""
        ...

    def alert_seqs(self) -> list[int]:
        """The change number of every alert row held, duplicates included."""
        ...


class Outage:
    """Wraps a destination; while ``down`` every delivery fails as an unreachable server."""

    def __init__(self, inner: Destination) -> None:
        self.inner = inner
        self.down = False

    @property
    def name(self) -> str:
        return self.inner.name

    def position(self) -> int | None:
        return self.inner.position()

    def accepts(self, change: ChangeRow) -> bool:
        return self.inner.accepts(change)

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        if self.down:
            raise RetriableError(f"{self.name}: connection refused")
        return self.inner.deliver(changes)

    def replay_from(self, seq: int) -> None:
        self.inner.replay_from(seq)

    def check(self) -> list[str]:
        return self.inner.check()

    def close(self) -> None:
        self.inner.close()


class CrashingHub(Hub):
    """The hub of a process killed right after a delivery, before its acknowledgement."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.engine)

    def record_delivery(
        self, name: str, seq: int, dead: Sequence[tuple[int, str, str, str, str]] = ()
    ) -> int:
        raise SystemExit("killed between delivery and acknowledgement")


def _wanted(harness: Harness, expected: dict[tuple[str, str], dict[str, str]]) -> dict:
    return {k: v for k, v in expected.items() if harness.tenants is None or k[0] in harness.tenants}


def _alert_changes(harness: Harness, hub: Hub) -> set[int]:
    return {
        c.seq
        for c in hub.changes_after(0, 100_000)
        if c.entity_type == "alert" and (harness.tenants is None or c.tenant_id in harness.tenants)
    }


def _check_rows(harness: Harness, hub: Hub) -> None:
    seqs = harness.alert_seqs()
    assert set(seqs) == _alert_changes(harness, hub)
    if harness.exactly_once_rows:
        assert [s for s, n in Counter(seqs).items() if n > 1] == []


def check_delivers_everything_once(harness: Harness, hub: Hub) -> None:
    expected = commit_workload(hub)
    runner = DestinationRunner(hub, harness.destination(), batch_size=7)
    assert runner.publish() == hub.max_seq()
    assert harness.incidents() == _wanted(harness, expected)
    _check_rows(harness, hub)
    assert runner.publish() == 0  # nothing new: nothing sent


def check_a_crash_before_the_ack_loses_and_duplicates_nothing(harness: Harness, hub: Hub) -> None:
    expected = commit_workload(hub)
    with pytest.raises(SystemExit):
        DestinationRunner(CrashingHub(hub), harness.destination(), batch_size=1000).publish()
    restarted = DestinationRunner(hub, harness.destination())  # a new process
    restarted.publish()
    assert harness.incidents() == _wanted(harness, expected)
    _check_rows(harness, hub)


def check_an_outage_holds_back_only_this_destination(harness: Harness, hub: Hub) -> None:
    expected = commit_workload(hub, incidents=3)
    flaky = Outage(harness.destination())
    runner = DestinationRunner(hub, flaky, retry_seconds=0.0)
    flaky.down = True
    with pytest.raises(RetriableError):
        runner.publish()
    (cursor,) = [c for c in hub.list_cursors() if c.name == flaky.name]
    assert cursor.error is not None and "connection refused" in cursor.error
    more = commit_workload(hub, incidents=5)  # sync goes on during the outage
    commit_alert_update(hub, TENANT_A, "1", 300)
    flaky.down = False
    runner.publish()
    assert harness.incidents() == _wanted(harness, expected | more)
    _check_rows(harness, hub)
    (cursor,) = [c for c in hub.list_cursors() if c.name == flaky.name]
    assert cursor.error is None and cursor.seq == hub.max_seq()


def check_replay_converges(harness: Harness, hub: Hub) -> None:
    expected = commit_workload(hub)
    runner = DestinationRunner(hub, harness.destination())
    runner.publish()
    runner.replay_from(10)
    assert hub.get_cursor(runner.name) == 9
    assert runner.publish() == hub.max_seq() - 9
    assert harness.incidents() == _wanted(harness, expected)
    _check_rows(harness, hub)


CHECKS = [
    check_delivers_everything_once,
    check_a_crash_before_the_ack_loses_and_duplicates_nothing,
    check_an_outage_holds_back_only_this_destination,
    check_replay_converges,
]
