"""The config file before validation: where it is, its TOML, secret references, and the two
sections `xdrsync query` reads, all without pydantic.

`config.py` validates the whole file into frozen pydantic models. Loading pydantic and
building those models costs about 80 ms, as much as the rest of a small query, so
`cli_query.py` reads only `[workspace]` and `[query]` through `for_query` and leaves every
other command, and every config `for_query` cannot vouch for, to `config.load_config`.
"""

from __future__ import annotations

import contextlib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from xdrsync.errors import ConfigError

DEFAULT_CONFIG_FILE: Final = Path("xdrsync.toml")
CONFIG_ENV: Final = "XDRSYNC_CONFIG"
#: The top-level tables `config.Config` knows (tests/test_configfile.py holds them equal).
SECTIONS: Final = frozenset(
    {"workspace", "tenants", "sync", "query", "console", "two_way", "destinations"}
)
#: `WorkspaceConfig.path` when the file names none, taken from the config file's folder.
DEFAULT_WORKSPACE: Final = Path("./xdrsync-data")
_SECRET_REFERENCES: Final = ("env:", "file:")


def config_path(path: Path | None = None) -> Path:
    """The file to read: ``path``, else ``$XDRSYNC_CONFIG``, else ``./xdrsync.toml``."""
    if path is not None:
        return path
    from_env = os.environ.get(CONFIG_ENV, "").strip()
    return Path(from_env) if from_env else DEFAULT_CONFIG_FILE


def read_config_file(file: Path) -> dict[str, Any]:
    """The file's TOML document; any problem is one ``ConfigError`` line naming the file."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8-sig"))  # a BOM (Windows) is no TOML
    except FileNotFoundError:
        problem = f"config file not found (pass --config FILE or set {CONFIG_ENV})"
    except (OSError, UnicodeDecodeError) as error:
        problem = f"cannot read config file: {getattr(error, 'strerror', None) or error}"
    except tomllib.TOMLDecodeError as error:
        problem = f"invalid TOML: {error}"
    raise ConfigError(f"{file}: {one_line(problem)}")


def resolve_path(path: Path, base_dir: Path | None) -> Path:
    """``path`` with ``~`` expanded, relative to ``base_dir`` (the config file's folder). A
    ``~user`` naming no account is left as written, as a shell leaves it."""
    with contextlib.suppress(RuntimeError):  # no such user, or no home to expand to
        path = path.expanduser()
    if not path.is_absolute() and base_dir is not None:
        return base_dir / path
    return path


def resolve_secret(value: str, base_dir: Path | None) -> str:
    """``env:NAME`` or ``file:PATH`` → the secret; anything else is taken literally.

    Errors name the variable or the file, never a value.
    """
    if value.startswith("env:"):
        name = value[4:].strip()
        if not name:
            raise ValueError("'env:' needs a variable name, e.g. env:CONTOSO_CLIENT_SECRET")
        # Trimmed as a file's content is: a variable filled from a file (a Kubernetes
        # secret made from one, an env file written by a template) may end with a newline,
        # and a secret sent with it fails sign-in.
        found = os.environ.get(name)
        if found is None:
            raise ValueError(f"environment variable {name} is not set")
        if not found.strip():
            raise ValueError(f"environment variable {name} is empty")
        return found.strip()
    if value.startswith("file:"):
        path = resolve_path(Path(value[5:].strip()), base_dir)
        try:
            text = path.read_text(encoding="utf-8-sig")  # without a BOM (PowerShell, Notepad)
        except (OSError, UnicodeDecodeError) as problem:
            reason = getattr(problem, "strerror", None) or type(problem).__name__
            raise ValueError(f"cannot read secret file {path}: {reason}") from None
        secret = text.strip()  # editors and `echo` add a trailing newline
        if not secret:
            raise ValueError(f"secret file {path} is empty")
        return secret
    return value


def one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class ForQuery:
    """What `xdrsync query` needs of a config: the workspace folder, the `[query]` settings
    written (keyword arguments of `tables.limits.QueryLimits`), and the secrets to keep out
    of its output (as `cli._load` registers them)."""

    workspace: Path
    query: Mapping[str, Any]
    secrets: tuple[str, ...]


def for_query(data: Mapping[str, Any], source: Path) -> ForQuery | None:
    """``[workspace]`` and ``[query]`` of the file ``source`` as `config.Config` would read
    them, or None wherever only `config.load_config` can tell: an unknown section or setting,
    a value of another type or out of bounds, no tenant, a secret reference that does not
    resolve, an inline secret (which earns a warning there).

    The other sections are not checked: a query runs while, say, a destination's settings
    are being fixed. Whatever this returns, `Config` returns too (tests/test_configfile.py).
    """
    base = source.resolve().parent
    if not SECTIONS.issuperset(data):
        return None
    workspace, query, tenants = (
        data.get("workspace", {}),
        data.get("query", {}),
        data.get("tenants"),
    )
    if not isinstance(workspace, dict) or not {"path", "database_url"}.issuperset(workspace):
        return None
    path = workspace.get("path", str(DEFAULT_WORKSPACE))
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    if not isinstance(query, dict) or not all(_query_setting(k, v) for k, v in query.items()):
        return None
    if (
        not isinstance(tenants, list)
        or not tenants
        or not all(isinstance(t, dict) for t in tenants)
    ):
        return None
    client_secrets = [t.get("client_secret") for t in tenants]
    written = [
        *client_secrets,
        *(
            t.get(setting)
            for t in tenants
            for setting in ("certificate_password", "proxy_password")
        ),
    ]
    if any(isinstance(v, str) and not v.startswith(_SECRET_REFERENCES) for v in written):
        return None  # a secret written in the file, which `Config` warns about (or refuses)
    if any(":" in str(t.get("proxy", "")).partition("://")[2].rpartition("@")[0] for t in tenants):
        return None  # a password in a proxy's URL, which `Config` refuses (a user is allowed)
    secrets = []
    for value in (workspace.get("database_url"), *client_secrets):
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        try:
            secrets.append(resolve_secret(value, base))
        except ValueError:
            return None
    return ForQuery(resolve_path(Path(path), base), dict(query), tuple(secrets))


def _query_setting(name: str, value: object) -> bool:
    """Whether `QueryConfig` takes ``value`` for ``name`` as it is (its bounds, exact types:
    pydantic's lax conversions, such as a number written as a string, go to `Config`)."""
    if name == "timeout_seconds":
        return isinstance(value, int | float) and type(value) is not bool and 0 < value < math.inf
    if type(value) is not int:
        return False
    if name == "memory_limit_mb":
        return value >= 64
    if name == "threads":
        return 1 <= value <= 64
    return name == "max_rows" and value >= 1


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_WORKSPACE",
    "SECTIONS",
    "ForQuery",
    "config_path",
    "for_query",
    "one_line",
    "read_config_file",
    "resolve_path",
    "resolve_secret",
]
