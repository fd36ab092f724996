"""A ready xdrsync config file for the emulator's tenants (demo, tests, benchmarks).

Secrets go to files beside the config, readable only by their owner, and the config refers
to them (``file:...``), the way the docs ask real deployments to do it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol


class EmulatedTenant(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_client_config(
    folder: Path,
    base_url: str,
    tenants: Iterable[EmulatedTenant],
    *,
    workspace: Path | str = ".",
    sync: Mapping[str, Any] | None = None,
    console: Mapping[str, Any] | None = None,  # default: any free port
    rate_limit_per_minute: int | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Path:
    """Write ``folder/xdrsync.toml`` for ``tenants`` of the emulator at ``base_url``; ``sync``
    and ``console`` are settings of those sections.

    ``secrets`` overrides a tenant's secret by name (to test a wrong one).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[workspace]", f"path = {_toml(workspace)}", ""]
    # The console on any free port: tests and benches run many services, never on a port
    # something else may hold.
    console = {"port": 0} if console is None else console
    for section, settings in (("sync", sync), ("console", console)):
        if settings:
            lines += [f"[{section}]", *(f"{k} = {_toml(v)}" for k, v in settings.items()), ""]
    for tenant in tenants:
        secret_file = folder / f"{tenant.name}.secret"
        secret_file.write_text((secrets or {}).get(tenant.name, tenant.client_secret) + "\n")
        secret_file.chmod(0o600)
        lines += [
            "[[tenants]]",
            f"name = {_toml(tenant.name)}",
            f"tenant_id = {_toml(tenant.tenant_id)}",
            f"client_id = {_toml(tenant.client_id)}",
            f"client_secret = {_toml('file:' + secret_file.name)}",
            f"graph_url = {_toml(base_url)}",
            f"authority_url = {_toml(base_url)}",
        ]
        if rate_limit_per_minute is not None:
            lines.append(f"rate_limit_per_minute = {rate_limit_per_minute}")
        lines.append("")
    path = folder / "xdrsync.toml"
    path.write_text("\n".join(lines))
    return path
