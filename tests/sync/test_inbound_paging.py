"""How far a crash sets inbound sync back: one page when Graph honours the requested order,
one window when it does not — and never past unread data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xdrsync.errors import RetriableError
from xdrsync.hub import Hub, default_url
from xdrsync.sync.inbound import INCIDENTS, InboundSettings, sync_stream
from xdrsync.sync.window import StreamState

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FakePage:
    items: Sequence[Mapping[str, Any]]
    server_date: datetime


def incident(n: int, updated: datetime) -> dict[str, Any]:
    stamp = updated.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return {
        "id": str(n),
        "displayName": f"incident {n}",
        "status": "active",
        "createdDateTime": stamp,
        "lastUpdateDateTime": stamp,
        "alerts": [],
    }


class FakeSource:
    """Serves pages of three incidents; can fail after ``fail_after`` pages."""

    def __init__(self, incidents: list[dict[str, Any]], *, fail_after: int | None = None) -> None:
        self.incidents = incidents
        self.fail_after = fail_after
        self.lowers: list[datetime] = []

    def list_incidents(self, lower: datetime, upper: datetime | None) -> Iterator[FakePage]:
        self.lowers.append(lower)
        chosen = [
            i
            for i in self.incidents
            if i["lastUpdateDateTime"] >= lower.strftime("%Y-%m-%dT%H:%M:%S")
        ]
        for number, start in enumerate(range(0, max(len(chosen), 1), 3)):
            if self.fail_after is not None and number >= self.fail_after:
                raise RetriableError("connection dropped")
            yield FakePage(chosen[start : start + 3], NOW)

    def list_alerts(self, lower: datetime, upper: datetime | None) -> Iterator[FakePage]:
        yield FakePage((), NOW)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with Hub.open(default_url(tmp_path)) as opened:
        yield opened


SETTINGS = InboundSettings(initial_backfill=timedelta(days=2))


def test_ordered_pages_move_the_state_page_by_page(hub: Hub) -> None:
    stamps = [NOW - timedelta(hours=40 - i) for i in range(12)]
    source = FakeSource([incident(i, s) for i, s in enumerate(stamps)], fail_after=2)
    with pytest.raises(RetriableError):
        sync_stream(
            hub, source, tenant_id="t", stream=INCIDENTS, settings=SETTINGS, clock=lambda: NOW
        )
    state = StreamState.from_doc(hub.get_state("t", INCIDENTS))
    # Two pages were read, then the third failed: each ordered page was committed with the
    # watermark at its last record, so the crash costs nothing already read.
    assert state.watermark is not None
    assert state.watermark.replace(microsecond=0) == stamps[5].replace(microsecond=0)
    assert state.ordered is True
    assert len(hub.list_incidents("t", limit=100)) == 6
    source.fail_after = None
    sync_stream(hub, source, tenant_id="t", stream=INCIDENTS, settings=SETTINGS, clock=lambda: NOW)
    assert source.lowers[-1] == state.watermark - SETTINGS.lookback  # resumed, not restarted
    assert len(hub.list_incidents("t", limit=100)) == 12
    assert StreamState.from_doc(hub.get_state("t", INCIDENTS)).watermark == NOW


def test_unordered_pages_keep_the_state_until_the_window_is_read(hub: Hub) -> None:
    stamps = [NOW - timedelta(hours=40 - i) for i in range(12)]
    newest_first = [incident(i, s) for i, s in reversed(list(enumerate(stamps)))]
    source = FakeSource(newest_first, fail_after=3)
    with pytest.raises(RetriableError):
        sync_stream(
            hub, source, tenant_id="t", stream=INCIDENTS, settings=SETTINGS, clock=lambda: NOW
        )
    state = StreamState.from_doc(hub.get_state("t", INCIDENTS))
    # Nothing proves the older records were read: the watermark has not moved at all.
    assert state.watermark is None
    assert state.ordered is False
    source.fail_after = None
    sync_stream(hub, source, tenant_id="t", stream=INCIDENTS, settings=SETTINGS, clock=lambda: NOW)
    assert len(hub.list_incidents("t", limit=100)) == 12
    final = StreamState.from_doc(hub.get_state("t", INCIDENTS))
    assert final.watermark == NOW and final.ordered is False
