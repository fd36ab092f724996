"""The health page in a real browser: a tenant that never read Graph is not shown as healthy.
Its card says "never" while the service is young, then "error" with the reason once the
grace has passed; a tenant that reads is "ok"."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from browser import chromium_available, signed_in
from consoledata import TENANT_A, TENANT_B, commit, incident_json
from playwright.sync_api import Browser, Locator, expect
from seeded import SeededConsole, seeded_console

from xdrsync.console.health import NEVER_SYNCED_GRACE
from xdrsync.graph import calls
from xdrsync.hub import Hub, InboundBatch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="needs /usr/bin/chromium (make test installs it)",
    ),
]

SILENT = "00000000-0000-0000-0000-00000000e5e5"  # configured, never read


def _populate(hub: Hub) -> None:
    now = datetime.now(UTC)
    for tenant in (TENANT_A, TENANT_B):
        commit(hub, tenant, [incident_json(tenant, "1", updated=0)])
        for stream in ("incidents", "alerts"):
            state = {"watermark": (now - timedelta(seconds=20)).isoformat()}
            hub.commit_batch(InboundBatch(tenant_id=tenant, stream=stream, state=state))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    folder = tmp_path_factory.mktemp("browser-health")
    with seeded_console(folder, _populate, [("northwind", SILENT)]) as console:
        yield console


def _badge(card: Locator) -> Locator:
    return card.locator("h2 .badge")


@pytest.mark.parametrize("age", ["young", "past the grace"])
def test_a_tenant_that_never_read_is_never_shown_ok(
    browser: Browser, seeded: SeededConsole, monkeypatch: pytest.MonkeyPatch, age: str
) -> None:
    # The console serves from this process: when "the service started" is what decides.
    started = datetime.now(UTC) - (NEVER_SYNCED_GRACE * 2 if age != "young" else timedelta(0))
    monkeypatch.setattr(calls, "started_at", lambda: started)
    session = signed_in(browser, seeded, "reader", "/health")
    try:
        page = session.page
        silent = page.locator("section.tenant-health[data-tenant='northwind']")
        for name in ("contoso", "fabrikam"):
            card = page.locator(f"section.tenant-health[data-tenant='{name}']")
            expect(_badge(card)).to_have_text("ok")
        rows = silent.locator("tbody tr")
        expect(rows).to_have_count(2)  # incidents and alerts, though neither has any state
        if age == "young":
            expect(_badge(silent)).to_have_text("never")
            expect(rows.locator(".badge")).to_have_text(["never", "never"])
        else:
            expect(_badge(silent)).to_have_text("error")
            expect(rows.first.locator(".bad")).to_contain_text("never synced")
        assert not session.errors, session.errors
    finally:
        session.close()
