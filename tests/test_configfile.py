"""`configfile.for_query`: the sections `xdrsync query` reads without pydantic, read exactly as
`config.Config` reads them, and left to it wherever they might not be."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.config import Config, parse_config
from xdrsync.configfile import SECTIONS, ForQuery, for_query
from xdrsync.errors import ConfigError

SECRET = "Xq8~very.secret-value_123"
TENANT = {
    "name": "contoso",
    "tenant_id": "00000000-0000-0000-0000-00000000000a",
    "client_id": "11111111-1111-1111-1111-11111111111b",
    "client_secret": "env:CONTOSO_SECRET",
}


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", SECRET)


def document(**sections: Any) -> dict[str, Any]:
    return {"tenants": [dict(TENANT)], **sections}


def both(data: dict[str, Any], source: Path) -> tuple[ForQuery | None, Config | None]:
    try:
        config: Config | None = parse_config(data, source=source)
    except ConfigError:
        config = None
    return for_query(data, source), config


def test_the_sections_are_configs_own() -> None:
    assert set(Config.model_fields) == SECTIONS


def test_a_plain_config_reads_as_config_reads_it(tmp_path: Path) -> None:
    source = tmp_path / "xdrsync.toml"
    data = document(
        workspace={"path": "data", "database_url": "file:db.url"},
        query={"timeout_seconds": 5, "threads": 4},
    )
    (tmp_path / "db.url").write_text("postgresql://u:pw-123456@db/x\n")
    quick, config = both(data, source)
    assert quick is not None and config is not None
    assert quick.workspace == config.workspace.path == tmp_path.resolve() / "data"
    assert quick.query == {"timeout_seconds": 5, "threads": 4}
    # the secrets `cli._load` keeps out of the output
    assert set(quick.secrets) == {SECRET, "postgresql://u:pw-123456@db/x"}


def test_the_default_workspace_is_the_config_files_folder(tmp_path: Path) -> None:
    quick, config = both(document(), tmp_path / "xdrsync.toml")
    assert quick is not None and config is not None
    assert quick.workspace == config.workspace.path == tmp_path.resolve() / "xdrsync-data"


@pytest.mark.parametrize(
    "data",
    [
        document(workspce={"path": "x"}),  # a misspelt section: Config says so
        document(workspace={"path": "x", "colour": "red"}),
        document(query={"threads": 0}),
        document(query={"threads": "4"}),  # pydantic's lax conversion
        document(query={"memory_limit_mb": 63}),
        document(query={"timeout_seconds": math.inf}),
        document(query={"rows": 5}),
        {"tenants": []},
        {"workspace": {"path": "x"}},
        document(tenants=[{**TENANT, "client_secret": "env:NOT_SET_ANYWHERE"}]),
        document(tenants=[{**TENANT, "client_secret": "inline-secret-value"}]),
        document(tenants=[{**TENANT, "client_secret": "file:missing.secret"}]),
        document(tenants=[{**TENANT, "certificate_password": "inline-password"}]),
        # a proxy's password inline, which Config refuses (in proxy_password or the URL)
        document(tenants=[{**TENANT, "proxy": "http://u@p:3128", "proxy_password": "pw123"}]),
        document(tenants=[{**TENANT, "proxy": "http://u:pw123@p:3128"}]),
    ],
)
def test_what_it_cannot_vouch_for_goes_to_config(data: dict[str, Any], tmp_path: Path) -> None:
    assert for_query(data, tmp_path / "xdrsync.toml") is None


def test_other_sections_are_not_its_business(tmp_path: Path) -> None:
    # A query runs while, say, the console's settings are being fixed.
    data = document(console={"port": "not a port"})
    quick, config = both(data, tmp_path / "xdrsync.toml")
    assert config is None and quick is not None


_VALUES = st.one_of(
    st.integers(min_value=-5, max_value=200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=4),
    st.sampled_from(["30", "64", "1e3"]),
    st.lists(st.integers(), max_size=2),
)
_NAMES = st.sampled_from(["timeout_seconds", "memory_limit_mb", "threads", "max_rows", "rows"])


@settings(max_examples=300, deadline=None)
@given(query=st.dictionaries(_NAMES, _VALUES, max_size=4), path=st.text(max_size=6))
def test_whatever_it_reads_config_reads_the_same(query: dict[str, Any], path: str) -> None:
    source = Path("/nonexistent/xdrsync.toml")
    data = document(workspace={"path": path}, query=query)
    quick, config = both(data, source)
    if quick is None:
        return
    assert config is not None, "the short path took a config that Config refuses"
    assert quick.workspace == config.workspace.path
    for name, value in quick.query.items():
        assert getattr(config.query, name) == value


def test_a_tilde_naming_no_account_is_a_folder_name_on_both_paths(tmp_path: Path) -> None:
    # Was a RuntimeError traceback from pathlib ("Could not determine home directory").
    data = document(workspace={"path": "~no-such-account-xdrsync"})
    quick, config = both(data, tmp_path / "xdrsync.toml")
    assert quick is not None and config is not None
    assert quick.workspace == config.workspace.path == tmp_path / "~no-such-account-xdrsync"
