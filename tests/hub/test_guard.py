"""The version guard's decisions, table-driven (pure: no database)."""

from __future__ import annotations

import pytest

from xdrsync.hub.guard import Version, decide, needs_history

V1 = Version(100, "a")
V1B = Version(100, "b")
V2 = Version(200, "c")
V3 = Version(300, "d")


@pytest.mark.parametrize(
    ("stored", "incoming", "known", "decisions"),
    [
        (None, [V1], [], ["insert"]),
        (V1, [V1], [], ["unchanged"]),
        (V1, [V2], [], ["update"]),
        (V1, [V1B], [], ["update"]),  # same version, different content
        (V2, [V1], [V1], ["stale"]),  # an old version we already hold
        (V2, [V1], [], ["late"]),  # an old version never seen: history only
        (V1B, [V1], [V1], ["unchanged"]),  # a shape we already hold at this version
        (None, [V2, V1, V2], [], ["insert", "update", "unchanged"]),  # oldest first
        (V3, [V1, V2], [V1], ["stale", "late"]),
    ],
)
def test_decisions(
    stored: Version | None,
    incoming: list[Version],
    known: list[Version],
    decisions: list[str],
) -> None:
    verdicts = decide(stored, [(v, v) for v in incoming], known)
    assert [v.decision for v in verdicts] == decisions


def test_each_verdict_names_the_version_it_replaced() -> None:
    verdicts = decide(V1, [(V3, "x"), (V2, "y")])
    assert [(v.item, v.previous) for v in verdicts] == [("y", V1), ("x", V2)]


def test_history_is_needed_only_for_older_or_conflicting_copies() -> None:
    assert not needs_history(None, [V1])
    assert not needs_history(V1, [V1, V2])
    assert needs_history(V2, [V1])
    assert needs_history(V1, [V1B])
