"""The workspace's state: incidents with their comments, and ingested log rows per stream.

One re-entrant lock guards everything; callers that read then write (an analyst's partial edit)
hold it across both. Etags are quoted GUIDs, new on every write. Server-set times come from a
clock that never repeats a value, so ``lastModifiedTimeUtc`` strictly increases with each write.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from xdrsync.emulator.sentinel.validation import MAX_COMMENTS, WRITABLE, empty_owner
from xdrsync.emulator.timefmt import graph_time, utcnow

PROVIDER_NAME = "Azure Sentinel"
PORTAL = "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident"


class UnknownIncidentError(KeyError):
    """No incident by that name."""


class UnknownCommentError(KeyError):
    """No comment by that name on the incident."""


class EtagConflictError(Exception):
    """The etag in a PUT does not name the stored version (or names one that does not exist)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class CommentLimitError(Exception):
    """The incident already holds the most comments Sentinel allows."""


def new_etag() -> str:
    return f'"{uuid.uuid4()}"'


@dataclass
class Comment:
    name: str
    etag: str
    sequence: int
    properties: dict[str, Any]


@dataclass
class Incident:
    name: str
    etag: str
    properties: dict[str, Any]
    comments: dict[str, Comment] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return int(self.properties["incidentNumber"])


class WorkspaceStore:
    def __init__(self, workspace_path: str, streams: tuple[str, ...]) -> None:
        self.workspace_path = workspace_path
        self.lock = threading.RLock()
        self._incidents: dict[str, Incident] = {}
        self._logs: dict[str, list[dict[str, Any]]] = {stream: [] for stream in streams}
        self._next_number = 1
        self._comment_sequence = 0
        self._last_time: datetime | None = None

    # -- time ------------------------------------------------------------------------------------

    def now(self) -> str:
        """The current time as Sentinel writes it, strictly later than any given before."""
        with self.lock:
            moment = utcnow()
            if self._last_time is not None and moment <= self._last_time:
                moment = self._last_time + timedelta(microseconds=1)
            self._last_time = moment
            return graph_time(moment)

    # -- incidents -------------------------------------------------------------------------------

    def incident_url(self, name: str) -> str:
        return (
            f"{PORTAL}{self.workspace_path}/providers/Microsoft.SecurityInsights/Incidents/{name}"
        )

    def incidents(self) -> list[Incident]:
        with self.lock:
            return list(self._incidents.values())

    def count(self) -> int:
        with self.lock:
            return len(self._incidents)

    def incident(self, name: str) -> Incident:
        with self.lock:
            found = self._incidents.get(name)
            if found is None:
                raise UnknownIncidentError(name)
            return found

    def put_incident(
        self, name: str, written: Mapping[str, Any], etag: str | None, *, create: bool = True
    ) -> tuple[Incident, bool]:
        """Create or replace the writable properties; (incident, created).

        An ``etag`` must name the stored version; one for an incident that does not exist is a
        conflict too. Without an etag the write wins whatever is stored.
        """
        with self.lock:
            existing = self._incidents.get(name)
            if etag is not None and (existing is None or existing.etag != etag):
                raise EtagConflictError(name)
            if existing is None and not create:
                raise UnknownIncidentError(name)
            now = self.now()
            if existing is None:
                number = self._next_number
                self._next_number += 1
                properties = {
                    **written,
                    "createdTimeUtc": now,
                    "lastModifiedTimeUtc": now,
                    "incidentNumber": number,
                    "incidentUrl": self.incident_url(name),
                    "providerName": PROVIDER_NAME,
                    "providerIncidentId": str(number),
                    "relatedAnalyticRuleIds": [],
                    "additionalData": {
                        "alertsCount": 0,
                        "bookmarksCount": 0,
                        "commentsCount": 0,
                        "alertProductNames": [],
                        "tactics": [],
                    },
                }
                incident = Incident(name, new_etag(), properties)
                incident.properties["labels"] = _labels(written.get("labels", []), [])
                self._incidents[name] = incident
                return incident, True
            previous_labels = existing.properties.get("labels", [])
            for key in WRITABLE:
                existing.properties.pop(key, None)
            existing.properties.update(written)
            existing.properties["labels"] = _labels(written.get("labels", []), previous_labels)
            existing.properties["lastModifiedTimeUtc"] = now
            existing.etag = new_etag()
            return existing, False

    def writable(self, name: str) -> dict[str, Any]:
        """A copy of the incident's writable properties (the base of a partial edit)."""
        with self.lock:
            props = self.incident(name).properties
            return copy.deepcopy({k: props[k] for k in WRITABLE if k in props})

    def touch(self, name: str) -> None:
        """A concurrent writer's no-op save: a new etag and a later ``lastModifiedTimeUtc``."""
        with self.lock:
            incident = self.incident(name)
            incident.properties["lastModifiedTimeUtc"] = self.now()
            incident.etag = new_etag()

    def delete_incident(self, name: str) -> bool:
        with self.lock:
            return self._incidents.pop(name, None) is not None

    # -- comments --------------------------------------------------------------------------------

    def comments(self, incident_name: str) -> list[Comment]:
        with self.lock:
            return list(self.incident(incident_name).comments.values())

    def comment(self, incident_name: str, name: str) -> Comment:
        with self.lock:
            found = self.incident(incident_name).comments.get(name)
            if found is None:
                raise UnknownCommentError(name)
            return found

    def put_comment(
        self,
        incident_name: str,
        name: str,
        message: str,
        author: Mapping[str, Any],
        etag: str | None,
    ) -> tuple[Comment, bool]:
        """Create or update a comment; (comment, created). The same message again changes
        nothing (the etag stays). Etags work as on incidents."""
        with self.lock:
            incident = self.incident(incident_name)
            existing = incident.comments.get(name)
            if etag is not None and (existing is None or existing.etag != etag):
                raise EtagConflictError(name)
            if existing is not None:
                if existing.properties["message"] != message:
                    existing.properties["message"] = message
                    existing.properties["lastModifiedTimeUtc"] = self.now()
                    existing.etag = new_etag()
                return existing, False
            if len(incident.comments) >= MAX_COMMENTS:
                raise CommentLimitError(incident_name)
            now = self.now()
            self._comment_sequence += 1
            comment = Comment(
                name,
                new_etag(),
                self._comment_sequence,
                {
                    "message": message,
                    "createdTimeUtc": now,
                    "lastModifiedTimeUtc": now,
                    "author": dict(author),
                },
            )
            incident.comments[name] = comment
            _count_comments(incident)
            return comment, True

    def delete_comment(self, incident_name: str, name: str) -> bool:
        with self.lock:
            incident = self.incident(incident_name)
            removed = incident.comments.pop(name, None) is not None
            _count_comments(incident)
            return removed

    # -- logs ------------------------------------------------------------------------------------

    def append_rows(self, stream: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self._logs[stream].extend(rows)

    def row_counts(self) -> dict[str, int]:
        with self.lock:
            return {stream: len(rows) for stream, rows in self._logs.items()}

    # -- truth -----------------------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        """Everything stored, as JSON-ready copies: incidents in number order, rows per stream."""
        with self.lock:
            incidents = sorted(self._incidents.values(), key=lambda i: i.number)
            return copy.deepcopy(
                {
                    "incidents": [
                        {
                            "name": i.name,
                            "etag": i.etag,
                            "properties": i.properties,
                            "comments": [
                                {"name": c.name, "etag": c.etag, "properties": c.properties}
                                for c in i.comments.values()
                            ],
                        }
                        for i in incidents
                    ],
                    "logs": self._logs,
                }
            )

    # -- seeded history --------------------------------------------------------------------------

    def seed(self, count: int, seed: int) -> None:
        """``count`` reproducible incidents, created over the last 30 days in number order."""
        rng = random.Random(f"xdrsync-sentinel/{seed}")
        now = utcnow()
        start = now - timedelta(days=30)
        step = timedelta(days=30) / max(count, 1)
        with self.lock:
            for index in range(count):
                created = start + step * index
                modified = min(created + timedelta(minutes=rng.randint(0, 600)), now)
                name = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                severity = rng.choice(("High", "Medium", "Low", "Informational"))
                status = rng.choice(("New", "New", "Active", "Closed"))
                written: dict[str, Any] = {
                    "title": f"Seeded incident {index + 1}",
                    "severity": severity,
                    "status": status,
                    "owner": empty_owner(),
                    "labels": [],
                }
                if status == "Closed":
                    written["classification"] = "Undetermined"
                incident, _ = self.put_incident(name, written, None)
                incident.properties["createdTimeUtc"] = graph_time(created)
                incident.properties["lastModifiedTimeUtc"] = graph_time(modified)


def _labels(written: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New labels are the user's; a label that was auto-assigned stays so when written back."""
    auto = {label["labelName"] for label in previous if label.get("labelType") == "AutoAssigned"}
    return [
        {
            "labelName": label["labelName"],
            "labelType": "AutoAssigned" if label["labelName"] in auto else "User",
        }
        for label in written
    ]


def _count_comments(incident: Incident) -> None:
    incident.properties["additionalData"]["commentsCount"] = len(incident.comments)
