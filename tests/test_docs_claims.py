"""The README and docs/ claim only what works: every TOML example loads, every `xdrsync`
command and option they name exists, every link between pages lands, and the routes and
metric names they give are served. Text only, no network: none of this can flake."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from xdrsync.cli import app
from xdrsync.config import (
    Config,
    ConflictPolicies,
    ConsoleConfig,
    QueryConfig,
    SentinelDestinationConfig,
    SyncConfig,
    TenantConfig,
    TwoWayConfig,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _blocks(language: str) -> Iterator[tuple[str, int, str]]:
    """(page, line, text) of every fenced block of ``language``."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for found in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            yield _name(page), text.count("\n", 0, found.start()) + 1, found.group(1)


# -- TOML examples ----------------------------------------------------------------------------

#: What a fragment leaves to the rest of the file (its `# ...`): a tenant's identity.
_TENANT = {
    "name": "contoso",
    "tenant_id": "00000000-0000-0000-0000-000000000000",
    "client_id": "11111111-1111-1111-1111-111111111111",
    "client_secret": "env:CONTOSO_CLIENT_SECRET",
}
#: A value for each setting a page writes as a placeholder (`"<sub>"`).
_PLACEHOLDERS = {
    "tenant_id": "33333333-3333-3333-3333-333333333333",
    "client_id": "44444444-4444-4444-4444-444444444444",
    "subscription_id": "22222222-2222-2222-2222-222222222222",
    "resource_group": "soc",
    "workspace": "soc-law",
}
TOML_BLOCKS = list(_blocks("toml"))


def _completed(data: Mapping[str, Any]) -> dict[str, Any]:
    """A fragment as a whole config: its tenants' missing identity from ``_TENANT``, a tenant
    if it has none, placeholders (``<...>``) replaced by values of their kind."""
    whole = dict(data)
    whole["tenants"] = [{**_TENANT, **t} for t in whole.get("tenants", [])] or [_TENANT]
    whole["destinations"] = [
        {k: _PLACEHOLDERS[k] if str(v).startswith("<") else v for k, v in d.items()}
        for d in whole.get("destinations", [])
    ]
    return whole


def test_the_pages_hold_toml_examples() -> None:
    assert len(TOML_BLOCKS) >= 4
    assert any(page == "docs/configuration.md" for page, _, _ in TOML_BLOCKS)


@pytest.mark.parametrize(
    ("page", "line", "block"), TOML_BLOCKS, ids=[f"{p}:{n}" for p, n, _ in TOML_BLOCKS]
)
def test_every_toml_example_loads(
    page: str, line: int, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in re.findall(r"env:([A-Z0-9_]+)", block):
        monkeypatch.setenv(variable, "a-secret-value")
    data = tomllib.loads(block)  # a syntax error is the page's
    parse_config(_completed(data), source=tmp_path / "xdrsync.toml")


def test_the_full_example_shows_each_settings_default() -> None:
    """docs/configuration.md's example writes every optional setting at its default, so a
    reader can take it for the defaults (other pages cite them: "default 30 s")."""
    block = next(b for p, _, b in TOML_BLOCKS if p == "docs/configuration.md")
    data = tomllib.loads(block)
    sections: list[tuple[str, type[Any], Mapping[str, Any]]] = [
        ("sync", SyncConfig, data["sync"]),
        ("query", QueryConfig, data["query"]),
        ("console", ConsoleConfig, data["console"]),
        ("two_way", TwoWayConfig, {k: v for k, v in data["two_way"].items() if k != "policy"}),
        ("two_way.policy", ConflictPolicies, data["two_way"]["policy"]),
    ]
    differing = [
        f"[{name}] {key} = {value!r} (default {model.model_fields[key].default!r})"
        for name, model, written in sections
        for key, value in written.items()
        if key in model.model_fields and model.model_fields[key].default != value
    ]
    assert differing == []
    tenant, destination = data["tenants"][0], data["destinations"][0]
    for model, written in ((TenantConfig, tenant), (SentinelDestinationConfig, destination)):
        for key in ("rate_limit_per_minute", "reads_per_minute", "writes_per_minute"):
            if key in written:
                assert written[key] == model.model_fields[key].default, key


# -- commands and options ---------------------------------------------------------------------


def _commands() -> tuple[dict[tuple[str, ...], set[str]], dict[tuple[str, ...], set[str]]]:
    """The groups (path → the names of their commands) and the commands (path, such as
    ``("incidents", "update")`` → the names of their options)."""
    groups: dict[tuple[str, ...], set[str]] = {}
    commands: dict[tuple[str, ...], set[str]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            groups[path] = set(subcommands)
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
            return
        commands[path] = {
            name
            for param in command.params
            for name in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
            if name.startswith("-")
        } | {"--help"}

    walk(typer.main.get_command(app), ())
    return groups, commands


GROUPS, COMMANDS = _commands()


def _spans() -> Iterator[tuple[str, str]]:
    """(page, text) of every code span and every line of a shell block (a line continued
    with a backslash joined to the next), with newlines inside a span read as spaces."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                yield _name(page), line.split(" #", 1)[0]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        for span in re.findall(r"`([^`]+)`", prose):
            yield _name(page), " ".join(span.split())


def _invocations() -> Iterator[tuple[str, str, list[str]]]:
    """(page, the text, its words after ``xdrsync``) of every command a page shows."""
    for page, text in _spans():
        for found in re.finditer(r"(?:^|[\s/;(&|])xdrsync ((?:[a-z][\w-]*)(?: .*)?)$", text):
            rest = found.group(1)
            try:
                words = shlex.split(rest.split(" | ")[0].split(" > ")[0].split(" &")[0])
            except ValueError:  # an unclosed quote: the span is a piece of a command
                words = rest.split()
            yield page, text, words


def _command_of(words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The longest command path ``words`` start with, and the words after it."""
    path: tuple[str, ...] = ()
    while words and path in GROUPS and words[0] in GROUPS[path]:
        path, words = (*path, words[0]), words[1:]
    return path, words


def test_every_command_a_page_names_exists_with_the_options_it_gives() -> None:
    wrong = []
    for page, text, words in _invocations():
        path, rest = _command_of(words)
        if not path:
            continue  # "`xdrsync as a ...`": prose in a span
        if path in GROUPS:  # the word after a group must be one of its commands
            if rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
                wrong.append(f"{page}: no `xdrsync {' '.join(path)} {rest[0]}` ({text!r})")
            continue
        for word in rest:
            option = word.strip("[]").split("=", 1)[0]
            if re.fullmatch(r"--?[a-zA-Z][\w-]*", option) and option not in COMMANDS[path]:
                wrong.append(f"{page}: `xdrsync {' '.join(path)}` has no {option} ({text!r})")
    assert wrong == []


def test_the_pages_name_commands() -> None:
    assert len(list(_invocations())) > 50


# -- links ------------------------------------------------------------------------------------


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_between_pages_lands_on_a_file_and_heading() -> None:
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https://, mailto:
            path, _, fragment = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{_name(page)}: {target} (no such file)")
            elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
                broken.append(f"{_name(page)}: {target} (no such heading)")
    assert broken == []


def test_every_page_a_page_names_exists() -> None:
    """`two-way.md`, `docs/fanout.md`, `destinations/sentinel.md` written as text."""
    missing = []
    for page in PAGES:
        for name in set(
            re.findall(r"`((?:docs/)?[\w/-]+\.md)(?:#[^`]*)?`", page.read_text(encoding="utf-8"))
        ):
            places = [ROOT / name, page.parent / name, ROOT / "docs" / name]
            if not any(p.exists() for p in places):
                missing.append(f"{_name(page)}: {name}")
    assert missing == []


# -- the REST API and /metrics ---------------------------------------------------------------


def _served() -> set[tuple[str, str]]:
    """(method, path with ``{}`` for each parameter) of every route the console serves."""
    from xdrsync.console import api
    from xdrsync.console.app import create_app

    config = Config.for_emulator(
        "http://127.0.0.1:1",
        [("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", "s")],
    )
    console = create_app(SimpleNamespace(config=config))  # type: ignore[arg-type]
    served = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, operations in console.openapi()["paths"].items()
        for method in operations
    }
    for route in [*console.routes, *api.metrics_router.routes]:
        for method in getattr(route, "methods", None) or ():
            served.add((method, re.sub(r"\{[^}]*\}", "{}", route.path)))  # type: ignore[attr-defined]
    return served


def test_every_console_route_the_docs_give_is_served() -> None:
    served = _served()
    named = set()
    for page in PAGES:
        for method, path in re.findall(
            r"`(GET|POST|PUT|PATCH|DELETE|HEAD) (/(?:api/|login|logout|healthz|metrics|openapi)"
            r"[^`\s?]*)",
            page.read_text(encoding="utf-8"),
        ):
            named.add((method, re.sub(r"\{[^}]*\}", "{}", path), _name(page)))
    assert len(named) > 20
    assert sorted(f"{p}: {m} {r}" for m, r, p in named if (m, r) not in served) == []


def test_every_metric_the_docs_name_is_exposed() -> None:
    source = (ROOT / "src/xdrsync/console/health.py").read_text(encoding="utf-8")
    exposed = set()
    for kind, name in re.findall(r"(Gauge|Counter)MetricFamily\(\s*\"(xdrsync_\w+)\"", source):
        exposed.add(f"{name}_total" if kind == "Counter" else name)  # as Prometheus names it
    named = {
        (metric, _name(page))
        for page in PAGES
        for metric in re.findall(r"`(xdrsync_[a-z_]+)`", page.read_text(encoding="utf-8"))
        if metric != "xdrsync_session"  # the session cookie
    }
    assert named
    assert sorted(f"{page}: {m}" for m, page in named if m not in exposed) == []
