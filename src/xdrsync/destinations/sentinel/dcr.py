"""The Azure side of the log data: custom tables and the data collection rule, as JSON.

Derived from the same schemas and renames that build the rows (``ingest.custom_row``), so
the setup in docs/destinations/sentinel.md cannot drift from what xdrsync sends. Print them
with ``python -m xdrsync.destinations.sentinel.dcr WORKSPACE_RESOURCE_ID LOCATION``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from xdrsync.destinations.sentinel.ingest import DROPPED, RENAMED
from xdrsync.tables.schemas import ALERT_EVIDENCE, SECURITY_ALERT, table_schema

#: Stream → (the log table whose rows it carries, the custom table it lands in).
STREAMS: Final[dict[str, tuple[str, str]]] = {
    "Custom-XdrSecurityAlert": (SECURITY_ALERT, "XdrSecurityAlert_CL"),
    "Custom-XdrAlertEvidence": (ALERT_EVIDENCE, "XdrAlertEvidence_CL"),
}
#: Our own columns, after the log table's.
EXTRA_COLUMNS: Final = (("XdrSeq", "long"), ("XdrTenant", "string"), ("XdrIncidentName", "string"))
_DCR_TYPES: Final = {"bool": "boolean"}  # the rest are spelled alike in KQL and in a DCR


def stream_columns(stream: str) -> list[dict[str, str]]:
    """``[{name, type}]`` of one stream, in the order rows carry them."""
    table, _ = STREAMS[stream]
    columns = [
        {"name": RENAMED.get(c.name, c.name), "type": _DCR_TYPES.get(c.kql_type, c.kql_type)}
        for c in table_schema(table).columns
        if c.name not in DROPPED
    ]
    return columns + [{"name": name, "type": kind} for name, kind in EXTRA_COLUMNS]


def dcr_template(workspace_resource_id: str, location: str) -> dict[str, Any]:
    """A ``kind: Direct`` data collection rule declaring both streams (passthrough)."""
    return {
        "location": location,
        "kind": "Direct",
        "properties": {
            "streamDeclarations": {
                stream: {"columns": stream_columns(stream)} for stream in STREAMS
            },
            "destinations": {
                "logAnalytics": [{"workspaceResourceId": workspace_resource_id, "name": "ws"}]
            },
            "dataFlows": [
                {
                    "streams": [stream],
                    "destinations": ["ws"],
                    "transformKql": "source",
                    "outputStream": f"Custom-{table}",
                }
                for stream, (_, table) in STREAMS.items()
            ],
        },
    }


def table_body(stream: str) -> dict[str, Any]:
    """The body of ``PUT .../workspaces/W/tables/<name>_CL`` for one stream's table."""
    _, table = STREAMS[stream]
    return {"properties": {"schema": {"name": table, "columns": stream_columns(stream)}}}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    workspace, location = argv
    tables = {STREAMS[s][1]: table_body(s) for s in STREAMS}
    print(json.dumps({"tables": tables, "dcr": dcr_template(workspace, location)}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["EXTRA_COLUMNS", "STREAMS", "dcr_template", "stream_columns", "table_body"]
