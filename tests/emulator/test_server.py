"""The emulator's foreground run (`xdrsync emulate defender`)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from xdrsync.emulator import server
from xdrsync.emulator.service import settings_for


def test_the_seeded_tenants_are_kept_out_of_the_collectors_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A full collection would walk every seeded object: at 10,000 incidents that stopped
    # the server for over a second, several times in a backfill.
    seen: dict[str, int] = {}

    def serve(app: Any, *, host: str, port: int, sock: Any = None) -> None:
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(server, "serve", serve)
    assert gc.get_freeze_count() == 0
    try:
        server.serve_forever(settings_for(seed=3, incidents=200), host="127.0.0.1", port=0)
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 200 * 50  # the incidents, their alerts and evidence, and more
