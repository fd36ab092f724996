"""The operator commands as an SOC engineer runs them, on a workspace synced from the
emulator: backfill's period and tenant, replay's bounds, a mistyped workspace path, and the
one clear line (with the right exit code) each mistake should get."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xdrsync.config import load_config
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.hub import Hub, configured_url


def xdrsync(*args: str, timeout: float = 180, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's stderr, which must be one ``error:`` line (no traceback, no box)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=41, incidents=20, tenants=2)) as server:
        yield server


@pytest.fixture(scope="module")
def synced(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose workspace has had one sync of both tenants (contoso, fabrikam)."""
    folder = tmp_path_factory.mktemp("operator")
    config = write_client_config(
        folder, emulator.base_url, emulator.emulator.settings.tenants, workspace="ws"
    )
    done = xdrsync("sync", "--once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    return config


def test_backfill_takes_a_tenant_by_name_or_id_in_any_case_and_says_what_it_read(
    synced: Path, emulator: EmulatorServer
) -> None:
    """`--tenant CONTOSO` was "no tenant in the config" (an exact match, where every other
    command takes any case), and a backfill said only "backfill done": a period that matched
    nothing looked like one that re-read everything."""
    contoso = emulator.emulator.settings.tenants[0]
    for given in ("CONTOSO", "{" + contoso.tenant_id.upper() + "}"):
        done = xdrsync(
            "backfill", "--config", str(synced), "--tenant", given,
            "--from", "2020-01-01", "--to", "2030-01-01",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "contoso/incidents: 20 read" in done.stdout, done.stdout
        assert "contoso/alerts: " in done.stdout and "fabrikam" not in done.stdout


def test_backfill_reads_iso_forms_in_utc_and_refuses_a_bad_period_in_one_line(
    synced: Path,
) -> None:
    config = str(synced)

    def backfill(lower: str, upper: str) -> subprocess.CompletedProcess[str]:
        return xdrsync(
            "backfill", "--config", config, "--stream", "incidents", "--tenant", "contoso",
            "--from", lower, "--to", upper,
        )  # fmt: skip

    # RFC 3339 allows a lower-case `z` (and `t`); it was "not an ISO-8601 date or time".
    done = backfill("2020-01-01t00:00:00z", "2030-01-01T00:00:00+02:00")
    assert done.returncode == 0, done.stderr
    assert "contoso/incidents: 20 read" in done.stdout
    # A period in the future read nothing and said "backfill done", exit 0.
    future = backfill("2999-01-01", "2999-02-01")
    assert future.returncode == 2 and "in the future" in one_error_line(future)
    # A moment outside the calendar once in UTC failed every stream later, with tracebacks.
    for lower, upper in (
        ("0001-01-01T00:00:00+01:00", "2030-01-01"),
        ("2020-01-01", "9999-12-31T23:59:59-05:00"),
    ):
        edge = backfill(lower, upper)
        assert edge.returncode == 2 and "out of range" in one_error_line(edge)
    # The same moment in two offsets: an empty period, said with both in UTC.
    empty = backfill("2026-12-01T10:00:00+02:00", "2026-12-01T08:00:00Z")
    line = one_error_line(empty)
    assert empty.returncode == 2 and "2026-12-01T08:00:00+00:00" in line
    typo = backfill("2026-13-01", "2027-01-01")
    assert typo.returncode == 2 and "--from '2026-13-01'" in one_error_line(typo)


def test_a_replay_never_moves_a_destination_forward(synced: Path) -> None:
    """A replay sets a destination's position to --from-seq - 1: from past what it had
    delivered, it skipped the changes between for good (and said "will be delivered
    again")."""
    config = str(synced)
    hub = Hub.open(configured_url(load_config(synced).workspace))
    try:
        head = hub.max_seq()
        assert head > 10
        back = xdrsync("destinations", "replay", "console", "--from-seq", "3", "--config", config)
        assert back.returncode == 0, back.stderr
        assert hub.get_cursor("console") == 2
        ahead = xdrsync("destinations", "replay", "console", "--from-seq", "9", "--config", config)
        assert ahead.returncode == 2 and "would skip 3..8" in one_error_line(ahead)
        assert hub.get_cursor("console") == 2  # nothing skipped
        done = xdrsync("sync", "--once", "--config", config)
        assert done.returncode == 0, done.stderr
        # The sync may read back an edit another test of this module queued.
        head = hub.max_seq()
        assert hub.get_cursor("console") == head
        # One past the last change: nothing to send again, said so ("changes 11..10" was).
        end = xdrsync(
            "destinations", "replay", "console", "--from-seq", str(head + 1), "--config", config
        )
        assert end.returncode == 0 and "nothing to replay" in end.stdout, end.stdout
        assert hub.get_cursor("console") == head
    finally:
        hub.close()


def test_commands_that_act_on_the_hub_refuse_a_workspace_that_has_none(
    synced: Path, tmp_path: Path
) -> None:
    """A mistyped `[workspace] path`: `incidents update`, `conflicts resolve` and `destinations
    replay` made an empty workspace there and answered from it ("no incident 1", "nothing
    to replay")."""
    text = synced.read_text(encoding="utf-8")
    typo = tmp_path / "typo.toml"
    missing = tmp_path / "no-such-ws"
    typo.write_text(text.replace('path = "ws"', f'path = "{missing}"'), encoding="utf-8")
    for secret in synced.parent.glob("*.secret"):
        (tmp_path / secret.name).write_bytes(secret.read_bytes())
        (tmp_path / secret.name).chmod(0o600)
    for command in (
        ("incidents", "update", "1", "--tenant", "contoso", "--comment", "x"),
        ("alerts", "update", "da1", "--tenant", "contoso", "--status", "resolved"),
        ("conflicts", "resolve", "1", "--take", "defender"),
        ("destinations", "replay", "tables", "--from-seq", "1"),
    ):
        done = xdrsync(*command, "--config", str(typo))
        assert done.returncode == 2 and "no hub at" in one_error_line(done), command
    assert not missing.exists()


def test_a_mistyped_choice_is_said_as_such(synced: Path) -> None:
    config = str(synced)
    # `--take` was checked after the edit: a typo got "no edit 1 in the outbox".
    take = xdrsync("conflicts", "resolve", "1", "--take", "mine", "--config", config)
    assert take.returncode == 2 and "--take is workspace or defender" in one_error_line(take)
    # A negative --timeout was taken, and --wait then waited not at all.
    wait = xdrsync(
        "incidents", "update", "1", "--tenant", "contoso", "--comment", "x",
        "--wait", "--timeout", "-1", "--config", config,
    )  # fmt: skip
    assert wait.returncode == 2 and "--timeout" in wait.stderr


def test_the_workspace_destinations_are_named_in_any_case(synced: Path) -> None:
    """A configured destination was found in any case, the workspace's own two (tables,
    console) only as spelled: `dead-letters TABLES` was "no destination named 'TABLES'"."""
    config = str(synced)
    listed = xdrsync("destinations", "dead-letters", "TABLES", "--config", config)
    assert listed.returncode == 0, listed.stderr
    cleared = xdrsync("destinations", "clear-dead-letters", "Console", "--config", config)
    assert cleared.returncode == 0 and "console: 0 dead letters cleared" in cleared.stdout


def test_piped_tables_keep_their_values_whole(synced: Path) -> None:
    """Written to a pipe (a script, `| grep`), a table was cut to 80 columns: the tenant
    shown as "conto…", the update time as "2026-12…", a title folded over lines."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    listed = xdrsync("incidents", "list", "--limit", "40", "--config", str(synced), env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 40  # one line each: no title folded over two
    for row in rows:
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells[0] in ("contoso", "fabrikam"), row
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", cells[6]), row
    state = xdrsync("state", "show", "--config", str(synced), env=env)
    assert re.search(r"contoso +│ incidents +│ \d{4}-\d\d-\d\dT", state.stdout), state.stdout


def test_an_update_finds_the_tenant_of_an_id_as_show_does(
    synced: Path, emulator: EmulatorServer
) -> None:
    """With several tenants, `incidents update` and `alerts update` needed --tenant even for
    an id that only one of them has; `show` found it. An id that several have is still
    refused, naming them."""
    config = str(synced)
    contoso = emulator.emulator.settings.tenants[0].tenant_id
    hub = Hub.open(configured_url(load_config(synced).workspace))
    try:
        alert = hub.current_alerts([(contoso, "1")])[(contoso, "1")][0]
    finally:
        hub.close()
    done = xdrsync("alerts", "update", str(alert.id), "--comment", "seen", "--config", config)
    assert done.returncode == 0, done.stderr
    assert "queued 1 edit(s)" in done.stdout
    both = xdrsync("incidents", "update", "1", "--comment", "x", "--config", config)
    assert both.returncode == 2
    assert "in several tenants (contoso, fabrikam)" in one_error_line(both)
    none = xdrsync("alerts", "update", "no-such-alert", "--status", "resolved", "--config", config)
    # A change refused exits 2 whether or not --tenant names the tenant (it was 1 without).
    assert none.returncode == 2 and "no alert no-such-alert in any tenant" in one_error_line(none)
    named = ("--tenant", "contoso", "--status", "resolved", "--config", config)
    assert xdrsync("alerts", "update", "no-such-alert", *named).returncode == 2


@pytest.mark.parametrize(
    ("alerts", "said"), [(0, ""), (1, " (with 1 alert)"), (7, " (with 7 alerts)")]
)
def test_a_streams_line_counts_its_alerts_in_english(alerts: int, said: str) -> None:
    from xdrsync.cli import _stream_line
    from xdrsync.sync.inbound import StreamReport

    report = StreamReport("t", "incidents", records=1, alerts_within=alerts, inserted=1)
    assert _stream_line("contoso", report) == (
        f"contoso/incidents: 1 read{said}, 1 new, 0 updated, 0 quarantined"
    )
