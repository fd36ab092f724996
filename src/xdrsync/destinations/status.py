"""How each destination is doing, read from the hub alone (no destination is contacted):
its position, how far behind the change sequence it is, its last error and its dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from xdrsync.config import Config
from xdrsync.hub import Hub
from xdrsync.layout import QUEUE_DESTINATION, TABLES_DESTINATION


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    name: str
    kind: str  # "log tables", "sentinel", ...
    position: int
    behind: int  # changes in the hub after the position
    oldest_pending_at: datetime | None  # when the oldest undelivered change was recorded
    delivered_at: datetime | None
    error: str | None
    failing_since: datetime | None
    dead_letters: int


def destination_statuses(hub: Hub, config: Config) -> list[DestinationStatus]:
    """The workspace tables and the console's queue first, then each configured destination,
    then any cursor the hub still holds for a destination no longer configured."""
    kinds = {TABLES_DESTINATION: "log tables", QUEUE_DESTINATION: "console queue"} | {
        d.name: d.type for d in config.destinations
    }
    cursors = {c.name: c for c in hub.list_cursors()}
    dead = hub.dead_letter_counts()
    head = hub.max_seq()
    names = [*kinds, *sorted(n for n in cursors if n not in kinds)]
    result = []
    for name in names:
        cursor = cursors.get(name)
        position = cursor.seq if cursor is not None else 0
        result.append(
            DestinationStatus(
                name=name,
                kind=kinds.get(name, "not configured"),
                position=position,
                behind=head - position,
                oldest_pending_at=hub.change_time(position) if head > position else None,
                delivered_at=cursor.delivered_at if cursor is not None else None,
                error=cursor.error if cursor is not None else None,
                failing_since=cursor.failing_since if cursor is not None else None,
                dead_letters=dead.get(name, 0),
            )
        )
    return result
