"""The wire around Graph calls: our httpx client, the server's clock, Graph's error bodies."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from xdrsync import __version__
from xdrsync.config import SyncConfig, TenantConfig

USER_AGENT = f"xdrsync/{__version__}"


def build_http_client(tenant: TenantConfig, sync: SyncConfig) -> httpx.Client:
    """The httpx client for one tenant: our timeout, our TLS settings, no redirects."""
    verify: ssl.SSLContext | bool
    if isinstance(tenant.verify_tls, str):
        bundle = Path(tenant.verify_tls)
        verify = (
            ssl.create_default_context(capath=str(bundle))
            if bundle.is_dir()
            else ssl.create_default_context(cafile=str(bundle))
        )
    else:
        verify = tenant.verify_tls
    return httpx.Client(
        timeout=httpx.Timeout(sync.request_timeout_seconds),
        verify=verify,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would carry our bearer token somewhere else
    )


def server_date(response: httpx.Response, fallback: Callable[[], datetime]) -> datetime:
    """The response's ``Date`` as aware UTC; our own clock only if the header is missing."""
    header = response.headers.get("Date")
    if header:
        try:
            parsed = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return fallback()


def graph_error_detail(response: httpx.Response) -> str:
    """``code: message`` from Graph's error body, or the status text; always one line."""
    detail = response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code, message = error.get("code"), error.get("message")
        detail = ": ".join(str(part) for part in (code, message) if part) or detail
    elif response.text:
        detail = f"{detail}: {response.text[:200]}"
    return " ".join(f"{response.status_code} {detail}".split())


def required_permission(method: str, path: str) -> str:
    """The Graph application permission a call on ``path`` needs (microsoft-apis.md §2.1)."""
    access = "Read" if method in ("GET", "HEAD") else "ReadWrite"
    if "/security/alerts" in path:
        return f"SecurityAlert.{access}.All"
    if "/security/incidents" in path and path.rstrip("/").endswith("/alerts"):
        return f"SecurityIncident.{access}.All and SecurityAlert.{access}.All"
    return f"SecurityIncident.{access}.All"


__all__ = [
    "USER_AGENT",
    "build_http_client",
    "graph_error_detail",
    "required_permission",
    "server_date",
]
