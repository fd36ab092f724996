"""From a ``[[destinations]]`` entry to the destination it configures."""

from __future__ import annotations

from xdrsync.config import Config, DestinationConfig
from xdrsync.destinations.base import Destination
from xdrsync.hub import Hub


def build_destination(entry: DestinationConfig, config: Config, hub: Hub) -> Destination:
    """The destination for one configured entry (imported only when one is configured)."""
    from xdrsync.destinations.sentinel.destination import SentinelDestination

    return SentinelDestination.connect(entry, config, hub)
