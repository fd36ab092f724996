"""`--help` as a newcomer reads it: each paragraph flows to the terminal's width, and what the
text names in brackets or backticks is shown."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from typer.testing import CliRunner

from xdrsync.cli import app


def _help(runner: CliRunner, *command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    # The help's frame and margins, then the text as one run of words.
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def test_a_later_paragraph_flows_to_the_width_rather_than_keeping_the_docstrings_breaks(
    runner: CliRunner,
) -> None:
    result = runner.invoke(app, ["sync", "--help"], env={"COLUMNS": "100"})
    text = result.output.split("Usage:", 1)[1].split("╭", 1)[0]  # the command's description
    lines = [line.strip() for line in text.splitlines()[1:]]
    # A line much shorter than the width with more of its paragraph after it is a docstring's
    # line break kept (the help had shown "... 2 for a config" alone, then "error, ...").
    broken = [a for a, b in pairwise(lines) if a and b and len(a) < 70]
    assert broken == []
    assert "does not fail it. 2 for a config error" in _help(runner, "sync")


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("init",), "as [two_way] enabled says"),  # was read as a style tag and dropped
        (("sync",), "(xdrsync conflicts list)"),  # backticks: code, not literal quotes
    ],
)
def test_what_the_help_names_is_shown(
    runner: CliRunner, command: tuple[str, ...], shown: str
) -> None:
    assert shown in _help(runner, *command)
