"""Requests a broken or hostile client sends the console: each gets the 4xx docs/api.md
promises, never a 500, and no answer names the server's files. Each request goes on a
fresh connection: after a 500 the server drops the connection it came on."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from consoledata import TENANT_A, TENANT_B, alert_json, commit, evidence, incident_json
from seeded import PASSWORD, SeededConsole, seeded_console

from xdrsync.console.server import console_server
from xdrsync.hub import Hub
from xdrsync.tables.access import open_store
from xdrsync.tables.logstore import LogStore

API = "/api/v1"


def _populate(hub: Hub) -> None:
    for tenant in (TENANT_A, TENANT_B):
        alerts, incidents = [], []
        for n in range(3):
            alert = alert_json(tenant, f"a{n}", str(n), items=[evidence("ip", f"10.0.0.{n}")])
            alerts.append(alert)
            incidents.append(incident_json(tenant, str(n), name=f"incident {n}", alerts=[alert]))
        commit(hub, tenant, incidents, alerts)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("hostile"), _populate) as console:
        yield console


def _reader(seeded: SeededConsole) -> httpx.Client:
    return seeded.client("reader")  # bearer token; closed with the console


def _session(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    reply = client.post("/login", data={"username": "rui", "password": PASSWORD})
    assert reply.status_code == 303, reply.text
    return client


# -- 1. a forged page token ---------------------------------------------------------------


def _page_token(sort: str, descending: bool, values: list[object]) -> str:
    body = json.dumps([sort, descending, values]).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        # a time without a zone: the hub refuses naive datetimes when binding them
        ("lastUpdate", ["2026-11-01T10:00:00", "x", "y"]),
        # a time that does not exist in UTC
        ("lastUpdate", ["0001-01-01T00:00:00+01:00", "x", "y"]),
        # an integer SQLite cannot hold
        ("alertCount", [10**30, "2026-11-01T10:00:00Z", "x", "y"]),
    ],
    ids=["naive-time", "time-before-utc-min", "huge-int"],
)
def test_a_forged_page_token_is_refused_with_422_not_500(
    seeded: SeededConsole, sort: str, values: list[object]
) -> None:
    """A page token passes back what the server made; one forged with values of the right
    type that the hub cannot bind is refused as a bad token, as other forgeries are."""
    token = _page_token(sort, True, values)
    reply = _reader(seeded).get(f"{API}/incidents", params={"sort": f"-{sort}", "skiptoken": token})
    assert reply.status_code == 422, (reply.status_code, reply.text[:200])


# -- 2. a long KQL expression ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kql",
    [
        # an IOC hunt: 1,000 titles or-ed together, 19 KB (the limit is 64 Ki characters)
        "SecurityIncident | where " + " or ".join(f"Title == 'ioc-{i}'" for i in range(1000)),
        # 75 nested parentheses
        "print " + "(" * 75 + "1" + ")" * 75,
    ],
    ids=["or-chain", "nested-parens"],
)
def test_a_deeply_nested_query_is_a_400_query_error_not_500(
    seeded: SeededConsole, kql: str
) -> None:
    """duckdb-kql's parser descends once per nesting, and each `or` of a chain nests one
    deeper: past Python's recursion limit the query is refused with a reason, and the
    same values as `in (...)` run."""
    assert len(kql) < 64 * 1024
    reply = _reader(seeded).post(f"{API}/query", json={"query": kql})
    assert reply.status_code == 400, (reply.status_code, reply.text[:200])
    error = reply.json()["error"]
    assert error["code"] == "refused"
    assert "nests too deeply" in error["message"]
    values = ", ".join(f"'ioc-{i}'" for i in range(1000))
    ran = _reader(seeded).post(
        f"{API}/query", json={"query": f"SecurityIncident | where Title in ({values}) | count"}
    )
    assert ran.status_code == 200, ran.text[:200]


# -- 3. a CSRF token with a non-ASCII character --------------------------------------------


def test_a_non_ascii_csrf_header_is_refused_with_403_not_500(seeded: SeededConsole) -> None:
    """Headers decode as Latin-1; a token with a non-ASCII character is simply wrong."""
    client = _session(seeded.url)
    try:
        reply = client.post(
            f"{API}/incidents/contoso~0/comments",
            json={"comment": "hello"},
            headers={"X-CSRF-Token": "\u00e9".encode("latin-1")},  # type: ignore[dict-item]
        )
    finally:
        client.close()
    assert reply.status_code == 403, (reply.status_code, reply.text[:200])


def test_a_non_ascii_csrf_form_field_on_logout_is_refused_with_403_not_500(
    seeded: SeededConsole,
) -> None:
    client = _session(seeded.url)
    try:
        reply = client.post("/logout", data={"csrf_token": "\u00e9"})
    finally:
        client.close()
    assert reply.status_code == 403, (reply.status_code, reply.text[:200])


# -- 4. a busy log store names its file ------------------------------------------------------


def test_a_busy_log_store_answer_does_not_reveal_the_server_path(seeded: SeededConsole) -> None:
    """While the sync appends, a query waits for the log store and then answers 503 busy;
    the message names no path (a reader may be a customer's, scoped to one tenant)."""
    config = seeded.workspace.config
    path: Path = seeded.workspace.logs.path
    impatient = LogStore(path, read_timeout=0.3, limits=config.query)
    impatient.initialize()  # the file exists, as in any workspace that has synced
    server = console_server(config, seeded.hub, impatient, port=0).start()
    try:
        # as a writer of this process holds it while appending
        with open_store(path, read_only=False, timeout=30):
            reply = _reader_at(seeded, server.base_url).post(
                f"{API}/query", json={"query": "SecurityIncident | count"}
            )
    finally:
        server.stop()
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["code"] == "busy"
    assert str(path.parent) not in reply.text, reply.text


def _reader_at(seeded: SeededConsole, url: str) -> httpx.Client:
    client = seeded.client("reader")
    client.base_url = httpx.URL(url)
    return client
