"""The ``[[destinations]]`` block of an xdrsync config that points at this emulator.

The secret is written as a literal (it is the local emulator's, derived from the seed) unless
the caller passes a reference such as ``file:sentinel.secret``.
"""

from __future__ import annotations

from xdrsync.emulator.sentinel.settings import ALERT_STREAM, EVIDENCE_STREAM, SentinelSettings


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def destination_toml(
    settings: SentinelSettings,
    base_url: str,
    *,
    name: str = "sentinel",
    client_secret: str | None = None,
) -> str:
    """TOML text for one Sentinel destination served by the emulator at ``base_url``;
    ``client_secret`` replaces the literal secret (e.g. with ``file:PATH``)."""
    base = base_url.rstrip("/")
    entries = (
        ("name", name),
        ("type", "sentinel"),
        ("subscription_id", settings.subscription_id),
        ("resource_group", settings.resource_group),
        ("workspace", settings.workspace),
        ("tenant_id", settings.tenant_id),
        ("client_id", settings.client_id),
        ("client_secret", client_secret or settings.client_secret),
        ("authority_url", base),
        ("arm_url", base),
        ("ingestion_endpoint", base),
        ("rule_id", settings.rule_id),
        ("alert_stream", ALERT_STREAM),
        ("evidence_stream", EVIDENCE_STREAM),
    )
    lines = ["[[destinations]]", *(f"{key} = {_toml_string(value)}" for key, value in entries)]
    return "\n".join(lines) + "\n"
