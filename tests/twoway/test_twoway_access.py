"""Whether a tenant takes workspace edits (twoway.access): the configuration and the
permissions its app registration was granted, and the reason `update` gives when not."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import pytest

from xdrsync.graph.permissions import (
    ALERT_READ,
    ALERT_READ_WRITE,
    INCIDENT_READ,
    INCIDENT_READ_WRITE,
)
from xdrsync.hub.records import EntityType
from xdrsync.twoway.access import capability_doc, read_only_reasons, recorded_roles

BOTH: tuple[EntityType, ...] = ("incident", "alert")
MISSING = {"incident": "SecurityIncident.ReadWrite.All", "alert": "SecurityAlert.ReadWrite.All"}


@pytest.mark.parametrize(
    ("roles", "read_only"),
    [
        # roles not known yet (no `xdrsync check`, or an opaque token): let through, Graph decides
        (None, ()),
        (frozenset(), ()),
        ([], ()),
        # granted
        ({INCIDENT_READ_WRITE, ALERT_READ_WRITE}, ()),
        ({INCIDENT_READ, INCIDENT_READ_WRITE, ALERT_READ, ALERT_READ_WRITE}, ()),
        # read-only app registrations
        ({INCIDENT_READ, ALERT_READ}, BOTH),
        ({"User.Read.All"}, BOTH),
        # mixed
        ({INCIDENT_READ_WRITE, ALERT_READ}, ("alert",)),
        ({INCIDENT_READ_WRITE}, ("alert",)),
        ({INCIDENT_READ, ALERT_READ_WRITE}, ("incident",)),
        # a similar name is not the permission
        ({"SecurityIncident.ReadWrite.All ", "securityalert.readwrite.all"}, BOTH),
    ],
)
def test_the_apps_permissions_decide_per_kind_of_record(
    roles: Collection[str] | None, read_only: tuple[EntityType, ...]
) -> None:
    reasons = read_only_reasons("contoso", True, roles)
    assert set(reasons) == set(read_only)
    for kind, reason in reasons.items():
        assert reason.startswith(f"tenant contoso is read-only for {kind}s")
        assert f"permission {MISSING[kind]}" in reason  # the one to grant
        other = MISSING["alert" if kind == "incident" else "incident"]
        assert other not in reason
        assert "admin consent" in reason
        assert "xdrsync check" in reason
        assert "\n" not in reason


@pytest.mark.parametrize(
    "roles", [None, frozenset(), {INCIDENT_READ_WRITE, ALERT_READ_WRITE}, {INCIDENT_READ}]
)
def test_a_tenant_disabled_in_the_config_is_read_only_whatever_it_may_do(
    roles: Collection[str] | None,
) -> None:
    reasons = read_only_reasons("fabrikam", False, roles)
    assert set(reasons) == set(BOTH)
    for reason in reasons.values():
        assert reason == "tenant fabrikam is read-only ([two_way] enabled = false in the config)"


def test_recorded_roles_round_trip_through_the_hubs_document() -> None:
    checked = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    doc = capability_doc({ALERT_READ, INCIDENT_READ_WRITE}, checked)
    assert doc == {
        "roles": [ALERT_READ, INCIDENT_READ_WRITE],
        "checked_at": "2024-05-01T10:00:00+00:00",
    }
    roles = recorded_roles(doc)
    assert roles == frozenset({ALERT_READ, INCIDENT_READ_WRITE})
    assert set(read_only_reasons("contoso", True, roles)) == {"alert"}


@pytest.mark.parametrize(
    "doc",
    [None, {}, {"checked_at": "2024-05-01"}, {"roles": "SecurityIncident.ReadWrite.All"}],
)
def test_no_recorded_roles_means_unknown_and_edits_go_through(
    doc: dict[str, object] | None,
) -> None:
    assert recorded_roles(doc) is None
    assert read_only_reasons("contoso", True, recorded_roles(doc)) == {}


def test_an_empty_recorded_list_is_unknown_too() -> None:
    roles = recorded_roles({"roles": []})
    assert roles == frozenset()
    assert read_only_reasons("contoso", True, roles) == {}
