"""A seeded Sentinel workspace for the KQL tests: five incidents, seven incident versions.

Imported by name (`from sentinel_workspace import ...`), like `graph_samples`. The same data as
`test_kql_sentinel_queries`: two incidents have two versions each (Sentinel writes a row per
update), with their SecurityAlert, AlertInfo and AlertEvidence rows per version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from graph_samples import (
    benign_incident,
    false_positive_incident,
    multistage_incident,
    phishing_incident,
    redirected_incident,
)

from xdrsync.models import Incident
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.sentinel import incident_rows

MULTISTAGE, PHISHING, FALSE_POSITIVE, BENIGN, REDIRECTED = (
    2972395,
    2972396,
    2972397,
    2972398,
    2972399,
)
KAI = "KaiC@contoso.onmicrosoft.com"


def versions() -> list[tuple[dict[str, Any], timedelta]]:
    """(Graph incident, age of its row). The benign incident's row is older than a day."""
    first_multistage = multistage_incident()
    first_multistage["comments"] = []
    handled_phishing = phishing_incident()
    handled_phishing.update(status="inProgress", assignedTo="AnalystA@contoso.onmicrosoft.com")
    return [
        (first_multistage, timedelta(hours=5)),
        (multistage_incident(), timedelta(hours=2)),
        (phishing_incident(), timedelta(hours=4)),
        (handled_phishing, timedelta(hours=1)),
        (false_positive_incident(), timedelta(hours=2, minutes=-10)),
        (benign_incident(), timedelta(hours=30)),
        (redirected_incident(), timedelta(hours=6)),
    ]


#: Half past an hour, 30 to 90 minutes ago, so every row lies in the past and in a known bin.
BASE = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
TIMES = [BASE - age for _, age in versions()]


def seeded_store(path: Path) -> LogStore:
    store = LogStore(path)
    for (graph, _), generated in zip(versions(), TIMES, strict=True):
        store.append_batch(incident_rows(Incident.from_graph(graph), time_generated=generated))
    return store
