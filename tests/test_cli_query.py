"""`xdrsync query`'s short path (`cli_query.quick`): it answers exactly as the typer command
does, and leaves to that command whatever it cannot answer the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xdrsync import collector, entry
from xdrsync.cli_query import _parse
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for

PYTHON = sys.executable
#: Through `python -m xdrsync` (the short path when it can), telling the probe file whether
#: typer was loaded, i.e. whether the typer command answered.
_MAIN = (
    "import atexit, os, runpy, sys\n"
    "atexit.register(lambda: open(os.environ['PROBE'], 'w').write(str('typer' in sys.modules)))\n"
    "sys.argv = ['xdrsync', *sys.argv[1:]]\n"
    "runpy.run_module('xdrsync', run_name='__main__')\n"
)
#: Straight to the typer command.
_TYPER = "import sys\nsys.argv = ['xdrsync', *sys.argv[1:]]\nfrom xdrsync.cli import app\napp()\n"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("query")
    with EmulatorServer(settings_for(seed=5, incidents=30)) as server:
        path = write_client_config(
            folder, server.base_url, server.emulator.settings.tenants, workspace="ws"
        )
        done = subprocess.run(
            [PYTHON, "-m", "xdrsync", "sync", "--once", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    return path


def run(script: str, args: list[str], probe: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [PYTHON, "-c", script, "query", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PROBE": str(probe), "COLUMNS": "120"},
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--format", "json", "SecurityIncident | count"], 0),
        (["--format=csv", "SecurityAlert | take 3 | project SystemAlertId"], 0),
        (["SecurityIncident | summarize n = count() by Severity | order by Severity asc"], 0),
        (["SecurityIncident | frobnicate", "--format", "json"], 1),
        (["print x = 'a [bold]markup[/bold] look-alike'"], 0),
    ],
)
def test_the_short_path_answers_as_the_typer_command_does(
    config: Path, tmp_path: Path, args: list[str], code: int
) -> None:
    probe = tmp_path / "typer-loaded"
    short = run(_MAIN, [*args, "-c", str(config)], probe)
    assert probe.read_text() == "False", "the short path answered"
    assert short == run(_TYPER, [*args, "--config", str(config)], probe)
    assert short[0] == code and (short[2] if code else short[1]).strip()  # rows, or an error line


def test_a_truncated_answer_warns_on_both_paths(config: Path, tmp_path: Path) -> None:
    capped = config.parent / "capped.toml"  # beside it: the same workspace and secret file
    capped.write_text(config.read_text() + "\n[query]\nmax_rows = 2\n")
    probe = tmp_path / "typer-loaded"
    args = ["--format", "json", "--config", str(capped), "SecurityIncident | take 5"]
    short = run(_MAIN, args, probe)
    assert probe.read_text() == "False"
    assert short == run(_TYPER, args, probe)
    assert len(json.loads(short[1])) == 2 and "warning:" in short[2]


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--help"], 0, "Run KQL over SecurityIncident"),
        (["--format", "xml", "SecurityIncident | count"], 2, "--format must be"),
        (["--limit", "3", "SecurityIncident | count"], 2, "No such option"),
    ],
)
def test_what_it_cannot_answer_goes_to_the_typer_command(
    config: Path, tmp_path: Path, args: list[str], code: int, said: str
) -> None:
    probe = tmp_path / "typer-loaded"
    done = run(_MAIN, [*args, "--config", str(config)], probe)
    assert probe.read_text() == "True"
    assert done[0] == code and said in done[1] + done[2]


def test_a_config_it_cannot_vouch_for_gets_configs_own_error(config: Path, tmp_path: Path) -> None:
    wrong = config.parent / "wrong.toml"
    wrong.write_text(config.read_text() + "\n[query]\nthreads = 0\n")
    probe = tmp_path / "typer-loaded"
    code, _, err = run(_MAIN, ["--config", str(wrong), "print 1"], probe)
    assert probe.read_text() == "True"
    assert code == 2 and "query.threads" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["T | count"], ("T | count", None, "table")),
        (["-c", "a.toml", "T"], ("T", Path("a.toml"), "table")),
        (["T", "--config=a.toml", "--format", "csv"], ("T", Path("a.toml"), "csv")),
        (["--format=json", "T"], ("T", None, "json")),
        (["T", "U"], None),  # two queries: typer says so
        (["--format", "json", "--format", "csv", "T"], None),
        (["-c=a.toml", "T"], None),  # click reads "=a.toml" as the value
        (["-ca.toml", "T"], None),
        (["--config", "T"], None),
        (["--config", "--format", "T"], None),
        (["--format", "yaml", "T"], None),
        (["--", "T"], None),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_arguments_it_takes(
    args: list[str], parsed: tuple[str, Path | None, str] | None
) -> None:
    assert _parse(args) == parsed


#: Half a minute of work for DuckDB on two threads (10^10 joined rows), past the time limit
#: the test sets: a Ctrl-C that does not reach the engine ends as that limit (exit 1).
_LONG = (
    "range x from 1 to 1000000 step 1 | extend k = x % 100 "
    "| join kind=inner (range z from 1 to 1000000 step 1 | extend k = z % 100) on k "
    "| summarize count()"
)
_LIMIT_SECONDS = 20


def _as_from_a_shell() -> None:
    """Ctrl-C as a terminal's shell leaves it to a command: not ignored, as a test runner's
    worker process may have it (and an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("script", [_MAIN, _TYPER], ids=["short path", "typer"])
def test_ctrl_c_stops_a_long_query_without_a_traceback(
    config: Path, tmp_path: Path, script: str
) -> None:
    """A Ctrl-C the engine missed would end as the time limit (exit 1); see
    tests/tables/test_query_guard.py for the watchdog that makes it reach the engine."""
    limited = config.parent / f"limited-{tmp_path.name}.toml"  # beside it: the same workspace
    limited.write_text(config.read_text() + f"\n[query]\ntimeout_seconds = {_LIMIT_SECONDS}\n")
    started = subprocess.Popen(
        [PYTHON, "-c", script, "query", "--config", str(limited), _LONG],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PROBE": str(tmp_path / "typer-loaded")},
        preexec_fn=_as_from_a_shell,
    )
    time.sleep(3)  # the query runs by then (it starts in a fraction of a second)
    started.send_signal(signal.SIGINT)
    out, err = started.communicate(timeout=120)
    assert started.returncode == 130, err
    assert "Traceback" not in err and not out


@pytest.mark.parametrize("argv", [["query", "print 1"], ["state", "show"]])
def test_ctrl_c_while_the_program_loads_exits_without_a_traceback(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt  # as if Ctrl-C came while the modules were being imported

    monkeypatch.setattr(collector, "tune", interrupted)
    monkeypatch.setattr(sys, "argv", ["xdrsync", *argv])
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == 130
    assert capsys.readouterr() == ("", "")


def test_an_error_shows_brackets_as_written(tmp_path: Path) -> None:
    # Rich reads "[red]" as a style: an error line echoing a path or a query must not.
    missing = tmp_path / "[red]conf[/red].toml"
    code, _, err = run(_MAIN, ["--config", str(missing), "print 1"], tmp_path / "probe")
    assert code == 2 and f"{missing}: config file not found" in err


def test_a_mistyped_workspace_is_refused_on_both_paths(config: Path, tmp_path: Path) -> None:
    """Not an empty, new workspace and a count of 0: the same refusal as `incidents list`."""
    mistyped = config.parent / "mistyped.toml"  # beside it: the same secret file
    mistyped.write_text(config.read_text().replace('path = "ws"', 'path = "wsx"', 1))
    probe = tmp_path / "typer-loaded"
    args = ["--format", "json", "--config", str(mistyped), "SecurityIncident | count"]
    short = run(_MAIN, args, probe)
    assert probe.read_text() == "False"
    assert short == run(_TYPER, args, probe)
    code, out, err = short
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"no workspace at {config.parent / 'wsx'}" in err and "[workspace] path" in err
    assert not (config.parent / "wsx").exists()
    (config.parent / "wsx").mkdir()  # a folder made for it: queried (empty, made private)
    code, out, err = run(_MAIN, args, probe)
    assert code == 0 and json.loads(out) == [{"Count": 0}], err
