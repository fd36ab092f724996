"""Property: however versions arrive — reordered, duplicated, split into any batches — each
record ends at its highest version with exactly one history row per distinct version."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hubdata import alert_json, batch, evidence_json, incident_json, stamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.hub import Hub

IDS = ("1", "2", "3")
VERSIONS = 4


def _version(incident_id: str, n: int) -> dict[str, Any]:
    # Every version has its own time and content; the alert changes with its incident.
    return incident_json(
        incident_id,
        stamp(n),
        name=f"{incident_id} v{n}",
        alerts=[
            alert_json(
                f"a{incident_id}",
                incident_id,
                stamp(n),
                status="new" if n < 2 else "inProgress",
                evidence=[evidence_json(n)],
            )
        ],
    )


ALL = [(i, n) for i in IDS for n in range(VERSIONS)]


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[tuple[str, int]]]:
    extra = draw(st.lists(st.sampled_from(ALL), max_size=12))
    order = draw(st.permutations(ALL + extra))
    sizes = draw(st.lists(st.integers(1, 6), min_size=len(order), max_size=len(order)))
    batches, rest = [], list(order)
    for size in sizes:
        if not rest:
            break
        batches.append(rest[:size])
        rest = rest[size:]
    return batches


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    # One database for every example and a fresh tenant per example: tenants are isolated, so
    # each example starts from nothing without paying for a new database.
    with Hub.open(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'hub.sqlite3'}") as hub:
        yield hub


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=deliveries())
def test_any_delivery_converges_to_the_highest_versions(
    shared_hub: Hub, batches: list[list[tuple[str, int]]]
) -> None:
    hub, tenant = shared_hub, str(uuid.uuid4())
    start = hub.max_seq()
    for page in batches:
        hub.commit_batch(batch(*(_version(i, n) for i, n in page), tenant=tenant))
    for incident_id in IDS:
        incident = hub.get_incident(tenant, incident_id)
        assert incident is not None
        assert incident.display_name == f"{incident_id} v{VERSIONS - 1}"
        assert [a.raw["lastUpdateDateTime"] for a in incident.alerts] == [stamp(VERSIONS - 1)]
        history = hub.incident_history(tenant, incident_id)
        assert [row.version_text for row in history] == [stamp(n) for n in range(VERSIONS)]
        alert_history = hub.alert_history(tenant, f"a{incident_id}")
        assert [row.version_text for row in alert_history] == [stamp(n) for n in range(VERSIONS)]
    changes = hub.changes_after(start, 10_000)
    assert {c.tenant_id for c in changes} == {tenant}
    assert [c.seq for c in changes] == list(range(start + 1, start + len(changes) + 1))
    # Destinations only ever see a record move forward.
    for _key, group in itertools.groupby(
        sorted(changes, key=lambda c: (c.entity_type, c.entity_id, c.seq)),
        key=lambda c: (c.entity_type, c.entity_id),
    ):
        versions = [c.version_text for c in group]
        assert versions == sorted(set(versions))
        assert versions[-1] == stamp(VERSIONS - 1)
    # And a full re-read afterwards is silent.
    seq = hub.max_seq()
    hub.commit_batch(batch(*(_version(i, n) for i, n in ALL), tenant=tenant))
    assert hub.max_seq() == seq
