"""The queue's filters refuse a value that can match no incident (a typo'd tenant,
``status=Actve``, Sentinel's ``new``) with a 422 naming it, instead of an empty list a script
reads as "no incidents" — while Graph's evolvable values (a status or severity Defender adds
later, a product this version does not know) stay filterable once an incident has them, and
a tenant the caller may not see is refused exactly as one that does not exist."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from consoledata import TENANT_A, TENANT_B, alert_json, commit, evidence, incident_json
from seeded import PASSWORD, SeededConsole, listed_ids, seeded_console

import xdrsync.models
from xdrsync.console.accounts import Accounts, grants
from xdrsync.hub import Hub
from xdrsync.models.identity import ENTITY_KINDS

API = "/api/v1"
QUEUE = (f"{API}/incidents", f"{API}/incidents/stats")


def _populate(hub: Hub) -> None:
    newer = incident_json(TENANT_A, "3", updated=12, severity="critical", status="underReview")
    commit(
        hub,
        TENANT_A,
        [
            incident_json(
                TENANT_A,
                "1",
                updated=10,
                tags=["phish"],
                alerts=[
                    alert_json(
                        TENANT_A,
                        "da1",
                        "1",
                        category="InitialAccess",
                        items=[evidence("ip", "10.0.0.1")],
                    )
                ],
            ),
            incident_json(
                TENANT_A,
                "2",
                updated=11,
                status="resolved",
                alerts=[alert_json(TENANT_A, "da2", "2", source="microsoftSentinelNext")],
            ),
            newer,
        ],
    )
    commit(hub, TENANT_B, [incident_json(TENANT_B, "1", updated=5, status="inProgress")])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("api-refusals"), _populate) as console:
        yield console


@pytest.fixture(scope="module")
def reader(seeded: SeededConsole) -> httpx.Client:
    return seeded.client("reader")


@pytest.fixture(scope="module")
def scoped(seeded: SeededConsole) -> httpx.Client:
    """A reader who sees fabrikam only."""
    accounts = Accounts(seeded.hub)
    accounts.add_user("sam", PASSWORD, "reader", grants(seeded.workspace.config, ["fabrikam"]))
    seeded.users["scoped"] = ("sam", PASSWORD)
    return seeded.client("scoped")


def _refused(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """The problems of a 422 (FastAPI's shape: loc, msg, type)."""
    reply = client.get(path, params=params)
    assert reply.status_code == 422, reply.text
    problems: list[dict[str, Any]] = reply.json()["detail"]
    for problem in problems:
        assert set(problem) == {"loc", "msg", "type"}
        assert problem["loc"][0] == "query" and problem["type"] == "value_error"
    return problems


def _one(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    (problem,) = _refused(client, path, **params)
    return problem


@pytest.mark.parametrize("path", QUEUE)
def test_a_tenant_not_configured_is_refused_with_the_tenants_there_are(
    reader: httpx.Client, path: str
) -> None:
    problem = _one(reader, path, tenant=["contoso", "fabrikm"])
    assert problem["loc"] == ["query", "tenant"]
    assert "'fabrikm'" in problem["msg"] and "contoso, fabrikam" in problem["msg"]
    assert "'contoso'" not in problem["msg"]  # only the bad one is named as bad
    assert listed_ids(reader, tenant="fabrikam") == {"fabrikam~1"}


def test_a_tenant_the_caller_may_not_see_is_refused_as_one_that_does_not_exist(
    scoped: httpx.Client,
) -> None:
    hidden = _one(scoped, f"{API}/incidents", tenant="contoso")
    missing = _one(scoped, f"{API}/incidents", tenant="nowhere")
    assert hidden["msg"].replace("'contoso'", "X") == missing["msg"].replace("'nowhere'", "X")
    assert "the tenants you see are fabrikam" in hidden["msg"]
    assert "contoso" not in missing["msg"]  # no other tenant's name learned from the answer
    assert listed_ids(scoped, tenant="fabrikam") == {"fabrikam~1"}


@pytest.mark.parametrize("path", QUEUE)
def test_a_status_no_incident_has_is_refused(reader: httpx.Client, path: str) -> None:
    problem = _one(reader, path, status="Actve")
    assert problem["loc"] == ["query", "status"]
    assert "'Actve'" in problem["msg"] and "inProgress" in problem["msg"]
    # Sentinel's New is Defender's active: the answer says so.
    new = _one(reader, path, status=["new", "active"])
    assert "'new'" in new["msg"] and "'active'" not in new["msg"]
    assert "Sentinel" in new["msg"]


def test_defenders_statuses_are_taken_in_any_case_and_a_newer_one_once_stored(
    reader: httpx.Client,
) -> None:
    assert listed_ids(reader, status="Active") == {"contoso~1"}
    assert listed_ids(reader, status="awaitingAction") == set()  # known: an honest nothing
    assert listed_ids(reader, status="unknownFutureValue") == set()
    assert listed_ids(reader, status="unknown") == set()
    # Defender added a status: stored as sent, counted under its name, filterable by it.
    counted = reader.get(f"{API}/incidents/stats").json()["byStatus"]
    assert counted["underReview"] == 1
    for status in counted:
        assert reader.get(f"{API}/incidents", params={"status": status}).status_code == 200
    assert listed_ids(reader, status="UnderReview") == {"contoso~3"}


def test_a_newer_value_counts_only_in_the_tenants_the_caller_sees(scoped: httpx.Client) -> None:
    # contoso has the newer status; a fabrikam reader is told none of theirs has it.
    assert "'underReview'" in _one(scoped, f"{API}/incidents", status="underReview")["msg"]


def test_a_severity_no_incident_has_is_refused(reader: httpx.Client) -> None:
    problem = _one(reader, f"{API}/incidents", severity="hihg")
    assert problem["loc"] == ["query", "severity"]
    assert "'hihg'" in problem["msg"] and "informational" in problem["msg"]
    assert "'unspecified'" in _one(reader, f"{API}/incidents", severity="unspecified")["msg"]
    assert listed_ids(reader, severity="critical") == {"contoso~3"}  # a newer one, stored
    assert listed_ids(reader, severity="HIGH") == {"contoso~3"}  # which high takes too
    assert listed_ids(reader, severity="low") == set()
    assert listed_ids(reader, severity="unknownFutureValue") == set()


def test_a_product_no_incident_has_is_refused_unless_graph_lists_it(reader: httpx.Client) -> None:
    problem = _one(reader, f"{API}/incidents/stats", product="microsoftDefenderForEndpont")
    assert problem["loc"] == ["query", "product"]
    assert "'microsoftDefenderForEndpont'" in problem["msg"]
    assert "microsoftDefenderForEndpoint" in problem["msg"]
    assert listed_ids(reader, product="microsoftDefenderForIdentity") == set()
    assert listed_ids(reader, product="microsoftsentinelnext") == {"contoso~2"}  # from data


def test_a_tactic_is_one_of_mitres_in_any_case(reader: httpx.Client) -> None:
    problem = _one(reader, f"{API}/incidents", tactic=["InitialAccess", "Initial Access"])
    assert problem["loc"] == ["query", "tactic"]
    assert "'Initial Access'" in problem["msg"] and "LateralMovement" in problem["msg"]
    assert listed_ids(reader, tactic="initialaccess") == {"contoso~1"}
    assert listed_ids(reader, tactic="Exfiltration") == set()


def test_free_text_filters_stay_open_but_an_empty_tag_and_an_empty_range_are_refused(
    reader: httpx.Client,
) -> None:
    assert listed_ids(reader, tag="escalate") == set()  # a tag anyone may add tomorrow
    assert listed_ids(reader, owner="nobody@contoso.com") == set()
    assert listed_ids(reader, tag="PHISH") == {"contoso~1"}
    assert _one(reader, f"{API}/incidents", tag="")["loc"] == ["query", "tag"]
    moment = "2026-11-01T00:00:00Z"
    assert _one(reader, f"{API}/incidents", **{"from": moment, "to": moment})["loc"] == [
        "query",
        "to",
    ]


def test_an_entity_kind_is_one_the_evidence_has(reader: httpx.Client) -> None:
    problem = _one(reader, f"{API}/incidents", entity="IP:10.0.0.1")
    assert problem["loc"] == ["query", "entity"]
    assert "'IP'" in problem["msg"] and "networkConnection" in problem["msg"]
    assert listed_ids(reader, entity="ip:10.0.0.1") == {"contoso~1"}
    assert listed_ids(reader, entity="ip:10.9.9.9") == set()  # a key is data
    kind = _one(reader, f"{API}/entities", kind="ipAddress")
    assert kind["loc"] == ["query", "kind"] and "'ipAddress'" in kind["msg"]
    listed = reader.get(f"{API}/entities", params={"kind": "ip"}).json()["value"]
    assert [e["key"] for e in listed] == ["10.0.0.1"]
    assert reader.get(f"{API}/entities", params={"kind": "mailbox"}).json()["value"] == []


def test_every_refused_filter_is_named_in_one_answer(reader: httpx.Client) -> None:
    problems = _refused(
        reader, f"{API}/incidents", tenant="fabrikm", status="Actve", tactic="Nope", tag=""
    )
    assert [p["loc"][1] for p in problems] == ["tenant", "status", "tactic", "tag"]


def test_the_entity_kinds_are_the_ones_the_models_key_evidence_under() -> None:
    # Each model names its kind as the first argument of make_key / EntityKey.
    found: set[str] = set()
    for source in Path(xdrsync.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                "make_key",
                "EntityKey",
            ):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    assert found == ENTITY_KINDS


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{API}/incidents", {"tenat": "fabrikam"}),
        (f"{API}/incidents/stats", {"severty": "high"}),
        (f"{API}/entities", {"knd": "ip"}),
        (f"{API}/changes", {"since": "0"}),
        (f"{API}/incidents/contoso~1", {"expand": "alerts"}),
    ],
)
def test_a_query_parameter_the_route_does_not_read_is_refused(
    reader: httpx.Client, path: str, params: dict[str, str]
) -> None:
    # A misspelt filter must not answer every incident, as though it had filtered them.
    (name,) = params
    problem = _one(reader, path, **params)
    assert problem["loc"] == ["query", name]
    assert "unknown query parameter" in problem["msg"]


def test_the_parameters_a_route_reads_are_named_and_still_taken(reader: httpx.Client) -> None:
    problem = _one(reader, f"{API}/incidents", tenat="fabrikam")
    for name in ("tenant", "status", "from", "sort", "top", "skiptoken"):
        assert name in problem["msg"]
    assert listed_ids(reader, tenant="fabrikam", sort="created", **{"from": "2000-01-01T00:00Z"})


def test_the_admin_routes_refuse_unknown_parameters_too(seeded: SeededConsole) -> None:
    admin = seeded.client("admin")
    assert admin.get(f"{API}/users").status_code == 200
    assert _one(admin, f"{API}/users", role="admin")["loc"] == ["query", "role"]


def test_every_unknown_parameter_is_named_in_one_answer(reader: httpx.Client) -> None:
    problems = _refused(reader, f"{API}/incidents", tenat="a", staus="b", tenant="fabrikam")
    assert [p["loc"][1] for p in problems] == ["staus", "tenat"]


def test_the_signed_in_users_own_route_refuses_unknown_parameters_too(
    reader: httpx.Client,
) -> None:
    assert reader.get(f"{API}/me").status_code == 200
    assert _one(reader, f"{API}/me", verbose="1")["loc"] == ["query", "verbose"]
