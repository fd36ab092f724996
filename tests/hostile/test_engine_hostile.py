"""What a user notices when Graph (or a record in it) turns hostile: `xdrsync sync --once` as a
real process against the hostile server — exit code, what was committed, what was quarantined,
what `state show` says, what the logs hold — one test per class (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile_server import DEEP_ID, HostileGraph, Mode, incident

from xdrsync.hub import Hub, default_url
from xdrsync.sync.window import StreamState

NOW = datetime.now(UTC).replace(microsecond=0)
SECRET_ENV = "HOSTILE_CLIENT_SECRET"


def seed(hostile: HostileGraph, count: int = 6) -> None:
    hostile.records = [incident(n, NOW - timedelta(hours=count - n)) for n in range(1, count + 1)]


def write_config(hostile: HostileGraph, folder: Path, **sync: Any) -> Path:
    values: dict[str, Any] = {
        "poll_interval_seconds": 0.2,
        "max_attempts": 2,
        "request_timeout_seconds": 5,
        "request_deadline_seconds": 10,
        "max_response_bytes": 8 * 1024 * 1024,
        "initial_backfill_days": 2,
        **sync,
    }
    lines = [
        "[workspace]",
        f'path = "{folder / "ws"}"',
        "",
        "[[tenants]]",
        'name = "hostile"',
        f'tenant_id = "{hostile.tenant_id}"',
        f'client_id = "{hostile.client_id}"',
        f'client_secret = "env:{SECRET_ENV}"',
        f'graph_url = "{hostile.base_url}"',
        f'authority_url = "{hostile.base_url}"',
        "rate_limit_per_minute = 10000",
        "",
        "[sync]",
        *(f"{key} = {value}" for key, value in values.items()),
    ]
    path = folder / "xdrsync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def xdrsync(
    hostile: HostileGraph, config: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SECRET_ENV: hostile.client_secret, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def hub_of(config: Path) -> Hub:
    return Hub.open(default_url(config.parent / "ws"))


def stored_ids(hub: Hub, tenant_id: str) -> set[str]:
    return {row.id for row in hub.list_incidents(tenant_id, limit=1000)}


def test_a_lone_surrogate_is_kept_losslessly_and_the_page_is_committed(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode = Mode.LONE_SURROGATE
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:
        assert stored_ids(hub, hostile.tenant_id) == {str(n) for n in range(1, 7)}
        odd = [
            i.to_graph()["displayName"]
            for i in (hub.get_incident(hostile.tenant_id, str(n)) for n in range(1, 7))
            if i is not None and "\udc00" in i.to_graph()["displayName"]
        ]
        assert len(odd) == 1  # the text exactly as Graph sent it
        assert hub.quarantine_counts() == {}
    rows = xdrsync(hostile, config, "query", "--format", "csv", "SecurityIncident | count")
    assert rows.returncode == 0, rows.stderr
    assert "6" in rows.stdout.split()


def test_non_objects_are_quarantined_with_a_trace_and_the_records_around_them_kept(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode, hostile.routes = Mode.NON_OBJECTS, {"incidents"}
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:
        assert stored_ids(hub, hostile.tenant_id) == {str(n) for n in range(1, 7)}
        bad = hub.list_quarantine(limit=100)
        reasons = {row.reason for row in bad}
        assert any("not a JSON object: str" in r for r in reasons)
        assert any("not a JSON object: null" in r for r in reasons)
        assert {row.raw for row in bad} >= {'"nope"', "42", "null", "[1, 2]", "true"}
        assert len(bad) == 5  # each once, however often the page was read
    assert xdrsync(hostile, config, "sync", "--once").returncode == 0  # read again: no new rows
    with hub_of(config) as hub:
        assert hub.quarantine_counts() == {(hostile.tenant_id, "incidents"): 5}
    shown = xdrsync(hostile, config, "state", "show")
    assert shown.returncode == 0
    row = next(line for line in shown.stdout.splitlines() if "│ incidents" in line)
    assert "5" in [cell.strip() for cell in row.split("│")]  # the quarantined column


EVIDENCE = "#microsoft.graph.security."


def test_evidence_that_does_not_fit_its_type_keeps_its_incident_among_non_objects(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    """A page of good incidents with non-objects among them, where one incident's alert
    holds evidence items whose values do not fit their types and another's an item that is
    not an object at all: the first is stored and shown, said once in the log; the second
    and the non-objects are quarantined."""
    seed(hostile)
    misfits = [
        {"@odata.type": EVIDENCE + "processEvidence", "processId": "abc"},
        {"@odata.type": EVIDENCE + "ipEvidence", "ipAddress": 12, "roles": ["attacker"]},
    ]
    hostile.records[1]["alerts"][0]["evidence"] = misfits
    hostile.records[3]["alerts"][0]["evidence"] = [misfits[0], "not an object"]
    hostile.mode, hostile.routes = Mode.NON_OBJECTS, {"incidents"}
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    again = xdrsync(hostile, config, "sync", "--once")
    assert again.returncode == 0, again.stderr
    with hub_of(config) as hub:
        assert stored_ids(hub, hostile.tenant_id) == {"1", "2", "3", "5", "6"}
        kept = hub.get_alert(hostile.tenant_id, "da000002_0")
        assert kept is not None and kept.to_graph() == hostile.records[1]["alerts"][0]
        bad = hub.list_quarantine(limit=100)
        assert len(bad) == 6  # the five non-objects and incident 4, each once
        (four,) = [row for row in bad if '"id": "4"' in row.raw]
        assert "evidence[1]" in four.reason
    warned = [line for line in done.stderr.splitlines() if "does not fit its type" in line]
    assert len(warned) == 2, done.stderr  # one per problem, the process's only
    assert all("da000002_0" in line and hostile.tenant_id in line for line in warned)
    rows = xdrsync(
        hostile,
        config,
        "query",
        "--format",
        "csv",
        "AlertEvidence | where AlertId == 'da000002_0' | project EntityType, EvidenceRole",
    )
    assert rows.returncode == 0, rows.stderr
    assert sorted(rows.stdout.split()[1:]) == ["Ip,Related", "Process,Related"]


def test_a_record_nested_too_deep_for_any_parser_is_quarantined_with_its_bytes(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode, hostile.routes = Mode.DEEP_NESTING, {"incidents"}
    hostile.deep_levels = 20_000
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:
        assert stored_ids(hub, hostile.tenant_id) == {str(n) for n in range(1, 7)}
        (deep,) = [row for row in hub.list_quarantine(limit=100) if DEEP_ID in row.raw]
        assert deep.raw.count("[") >= 20_000  # the raw text, whole
        assert deep.reason


def test_two_copies_of_one_version_with_different_content_both_reach_the_history(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode, hostile.routes = Mode.DUPLICATE_ID, {"incidents"}
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:
        histories = [hub.incident_history(hostile.tenant_id, str(n)) for n in range(1, 7)]
        twice = [h for h in histories if len(h) == 2]
        assert len(twice) == 1
        assert twice[0][0].version_text == twice[0][1].version_text
        assert twice[0][0].content_hash != twice[0][1].content_hash


@pytest.mark.parametrize("mode", [Mode.VALUE_NOT_LIST, Mode.EMPTY_OBJECT])
def test_a_page_that_breaks_the_contract_fails_the_cycle_and_moves_no_watermark(
    hostile: HostileGraph, tmp_path: Path, mode: Mode
) -> None:
    seed(hostile)
    hostile.mode, hostile.routes = mode, {"incidents"}
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode != 0
    with hub_of(config) as hub:
        state = StreamState.from_doc(hub.get_state(hostile.tenant_id, "incidents"))
        assert state.watermark is None and state.cycles == 0  # the backfill is not "done"
        assert stored_ids(hub, hostile.tenant_id) == set()
    shown = xdrsync(hostile, config, "state", "show")
    assert "value" in shown.stdout and "never synced" in shown.stdout
    hostile.mode = Mode.NORMAL
    again = xdrsync(hostile, config, "sync", "--once")
    assert again.returncode == 0, again.stderr
    with hub_of(config) as hub:
        assert stored_ids(hub, hostile.tenant_id) == {str(n) for n in range(1, 7)}


def test_a_next_link_with_a_broken_port_cannot_derail_time_boundary_paging(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile, 12)
    hostile.mode = Mode.BAD_PORT_LINK
    config = write_config(hostile, tmp_path, page_size_incidents=5)
    done = xdrsync(hostile, config, "sync", "--once")
    # The engine asks for each page by time itself; a link is only a "more" signal.
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:
        assert len(stored_ids(hub, hostile.tenant_id)) == 12


def test_a_full_page_without_a_next_link_is_not_taken_for_the_last(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile, 12)
    hostile.mode = Mode.NO_NEXT_LINK  # every page loses its link (a proxy, a gateway)
    config = write_config(hostile, tmp_path, page_size_incidents=5)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:  # the first page alone ended the read before: 5 of 12
        assert len(stored_ids(hub, hostile.tenant_id)) == 12


def test_a_date_from_the_future_does_not_carry_the_watermark_there(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    config = write_config(hostile, tmp_path)
    assert xdrsync(hostile, config, "sync", "--once").returncode == 0  # the backfill
    hostile.mode, hostile.times, hostile.routes = Mode.FUTURE_DATE, 1, {"incidents"}
    assert xdrsync(hostile, config, "sync", "--once").returncode == 0
    assert hostile.hostile_served == 1
    with hub_of(config) as hub:
        state = StreamState.from_doc(hub.get_state(hostile.tenant_id, "incidents"))
    assert state.watermark is not None
    assert state.watermark <= datetime.now(UTC)  # was a day ahead: the Date's
    hostile.records.append(incident(7, datetime.now(UTC) - timedelta(seconds=1)))
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    with hub_of(config) as hub:  # updated before the real time reached that Date: read
        assert "7" in stored_ids(hub, hostile.tenant_id)


def test_a_partial_page_is_read_again_not_taken_for_whole(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode, hostile.times, hostile.routes = Mode.PARTIAL, 1, {"incidents"}
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    assert hostile.hostile_served == 1
    with hub_of(config) as hub:  # the 206 page lacked incident 1, and ended the read
        assert stored_ids(hub, hostile.tenant_id) == {str(n) for n in range(1, 7)}


def test_alerts_pages_too_large_to_read_are_asked_for_in_smaller_pages(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile, 1)
    now = datetime.now(UTC)
    for n in range(40):  # alerts changed lately, about 4 KB each: 40 are over the 64 KiB cap
        alert = incident(100 + n, now - timedelta(seconds=90 - n))["alerts"][0]
        alert["evidence"] = [
            {
                "@odata.type": "#microsoft.graph.security.processEvidence",
                "processCommandLine": "x" * 4000,
                "verdict": "suspicious",
            }
        ]
        hostile.alerts.append(alert)
    config = write_config(hostile, tmp_path, max_response_bytes=64 * 1024)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode == 0, done.stderr  # the alerts stream failed at its first page
    with hub_of(config) as hub:
        missing = [
            a["id"] for a in hostile.alerts if hub.get_alert(hostile.tenant_id, a["id"]) is None
        ]
    assert missing == []


def test_an_echoed_token_reaches_no_output_and_no_stored_error(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    seed(hostile)
    hostile.mode = Mode.ECHO_AUTHORIZATION
    config = write_config(hostile, tmp_path)
    done = xdrsync(hostile, config, "sync", "--once")
    assert done.returncode != 0
    shown = xdrsync(hostile, config, "state", "show")
    with hub_of(config) as hub:
        stored = " ".join(row.last_error or "" for row in hub.list_states())
    assert hostile.issued
    for token in hostile.issued:
        for text in (done.stdout, done.stderr, shown.stdout, shown.stderr, stored):
            assert token not in text
            assert token[:40] not in text
    assert stored  # the failure itself is recorded


@pytest.mark.parametrize("mode", [Mode.HUGE, Mode.DRIP])
def test_huge_and_dripping_answers_are_cut_off_and_recorded(
    hostile: HostileGraph, tmp_path: Path, mode: Mode
) -> None:
    seed(hostile)
    hostile.mode, hostile.routes = mode, {"incidents"}
    config = write_config(
        hostile, tmp_path, max_response_bytes=1024 * 1024, request_deadline_seconds=3
    )
    began = time.monotonic()
    done = xdrsync(hostile, config, "sync", "--once")
    took = time.monotonic() - began
    assert done.returncode != 0
    assert took < 90  # two attempts of a 3 s deadline, plus start-up; never the whole body
    with hub_of(config) as hub:
        (row,) = [r for r in hub.list_states() if r.stream == "incidents"]
        expected = "max_response_bytes" if mode is Mode.HUGE else "request_deadline_seconds"
        assert row.last_error is not None and expected in row.last_error
