"""Hub → the workspace's log tables: the change sequence becomes Sentinel-shaped rows, each
change exactly once.

The log store keeps the ``_Seq`` of every row it holds, so its position *is* the highest
``_Seq`` it stores, committed in the same DuckDB transaction as the rows. A crash between
the append and anything else therefore neither loses nor repeats a change; the hub's cursor
named ``tables`` only mirrors that position for ``destinations status``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from xdrsync.destinations.base import Rejection
from xdrsync.hub import ChangeRow, Hub
from xdrsync.layout import TABLES_DESTINATION
from xdrsync.models import Alert, Incident
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES
from xdrsync.tables.sentinel import (
    alert_evidence_rows,
    alert_info_row,
    security_alert_row,
    security_incident_row,
)

Row = dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LogTables:
    """The workspace's own Sentinel-shaped log tables, as a destination."""

    batch_size = 1000  # one DuckDB transaction each; memory stays flat

    def __init__(
        self,
        hub: Hub,
        store: LogStore,
        *,
        name: str = TABLES_DESTINATION,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.hub = hub
        self.store = store
        self.name = name
        self.clock = clock

    def position(self) -> int:
        stored = [self.store.max_seq(table) for table in TABLE_NAMES]
        return max((s for s in stored if s is not None), default=0)

    def accepts(self, change: ChangeRow) -> bool:
        return True  # every tenant's changes

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        self.store.append_batch(self._rows(changes))
        return ()

    def replay_from(self, seq: int) -> None:
        """Remove the rows of changes from ``seq`` on, so they are written once again."""
        self.store.remove_from_seq(seq)

    def check(self) -> list[str]:
        self.store.initialize()
        return [f"{self.name}: the log tables in {self.store.path} are writable"]

    def close(self) -> None:
        return None

    def _rows(self, changes: Sequence[ChangeRow]) -> dict[str, list[Row]]:
        started = self.clock()
        # Each alert version is parsed once: for its own rows and, when it is the current
        # version, for the incident rows that summarise it.
        alerts = {c.seq: Alert.from_graph(c.payload) for c in changes if c.entity_type == "alert"}
        keys = {(c.tenant_id, c.entity_id) for c in changes if c.entity_type == "incident"}
        current = self.hub.current_alerts(sorted(keys), alerts) if keys else {}
        rows: dict[str, list[Row]] = {}
        for offset, change in enumerate(changes):
            # Later changes get later TimeGenerated, so `arg_max(TimeGenerated, *)` picks the
            # newest version even when one batch carries several versions of an incident.
            now = started + timedelta(microseconds=offset)
            tenant = change.tenant_id
            if change.entity_type == "incident":
                # Every version, the latest or an older one in a backlog, is shown with the
                # alerts the incident has now (the hub keeps no history of membership).
                incident = Incident.from_graph(change.payload).model_copy(
                    update={"alerts": tuple(current[(tenant, change.entity_id)])}
                )
                row = security_incident_row(
                    incident, time_generated=now, workspace_tenant_id=tenant
                )
                if change.modified_by:  # the echo of a workspace edit: its author, not the app
                    row["ModifiedBy"] = change.modified_by
                _add(rows, "SecurityIncident", row, change)
                continue
            alert = alerts[change.seq]
            _add(
                rows,
                "SecurityAlert",
                security_alert_row(alert, time_generated=now, tenant_id=tenant),
                change,
            )
            _add(
                rows,
                "AlertInfo",
                alert_info_row(alert, time_generated=now, tenant_id=tenant),
                change,
            )
            for evidence in alert_evidence_rows(alert, time_generated=now, tenant_id=tenant):
                _add(rows, "AlertEvidence", evidence, change)
        return rows


def _add(rows: dict[str, list[Row]], table: str, row: Row, change: ChangeRow) -> None:
    row["_Seq"] = change.seq
    row["_TimeReceived"] = change.at  # when the hub received this version from Graph
    rows.setdefault(table, []).append(row)
