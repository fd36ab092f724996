"""Both emulators and an xdrsync workspace between them, for end-to-end Sentinel tests.

A ``World`` is a Defender emulator (the source), a Sentinel emulator (the destination) and a
config file that points xdrsync at both, so ``xdrsync run`` / ``sync --once`` / ``destinations
status`` can run as subprocesses (or a ``Workspace`` in-process). The checks read both
emulators' ground truth and the hub, and state the guarantees of docs/fanout.md and
docs/destinations/sentinel.md: every Defender incident once in Sentinel with its current mapped
fields, analysts' labels kept, every alert change of the hub ingested (by ``XdrSeq``).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from xdrsync.config import Config, SyncConfig, load_config
from xdrsync.destinations.sentinel.mapping import desired_incident, incident_name
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.sentinel import SentinelEmulatorServer, SentinelSettings, destination_toml
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.tenants import EmulatorSettings
from xdrsync.hub import Hub, configured_url
from xdrsync.models import Incident

SENTINEL = "sentinel"  # the destination's name in the config
ALERT_STREAM = "Custom-XdrSecurityAlert"
#: The Sentinel incident properties compared with what the mapping makes of Defender's truth.
COMPARED = ("title", "severity", "status", "classification", "classificationReason")


@dataclass
class World:
    defender: EmulatorServer
    sentinel: SentinelEmulatorServer
    folder: Path
    config_file: Path
    config: Config
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    _hub: Hub | None = None

    # -- the two emulators ----------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return self.config.tenants[0].tenant_id

    @property
    def tenant_name(self) -> str:
        return self.config.tenants[0].name

    def defender_control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        reply = self.http.request(
            method, f"{self.defender.base_url}/_emulator{path}", timeout=60, **kwargs
        )
        reply.raise_for_status()
        return reply

    def sentinel_control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        reply = self.http.request(
            method, f"{self.sentinel.base_url}/_emulator{path}", timeout=60, **kwargs
        )
        reply.raise_for_status()
        return reply

    def defender_truth(self) -> list[dict[str, Any]]:
        """Every Defender incident with its alerts (updates not yet listable included)."""
        return list(self.defender_control("GET", "/truth").json()["value"])

    def sentinel_truth(self) -> dict[str, Any]:
        body: dict[str, Any] = self.sentinel_control("GET", "/truth").json()
        return body

    def sentinel_stats(self) -> dict[str, Any]:
        body: dict[str, Any] = self.sentinel_control("GET", "/stats").json()
        return body

    def incident_puts(self) -> int:
        """Incident PUTs the Sentinel emulator received (answered or not)."""
        return sum(
            n
            for route, n in self.sentinel_stats()["by_route"].items()
            if route.startswith("PUT ") and route.endswith("/incidents/{name}")
        )

    def add_analyst_label(self, name: str, label: str) -> None:
        """An analyst adds a label in the Sentinel portal (the emulator's control surface):
        the incident's labels as shown, plus ``label``, saved with the etag of what was shown
        (shown again and saved again if xdrsync wrote the incident in between)."""
        store = self.sentinel.emulator.store
        for _ in range(20):
            with store.lock:
                shown = store.incident(name)
                etag, labels = shown.etag, copy.deepcopy(shown.properties.get("labels") or [])
            labels.append({"labelName": label, "labelType": "User"})
            body = {"etag": etag, "properties": {"labels": labels}}
            reply = self.http.post(
                f"{self.sentinel.base_url}/_emulator/incidents/{name}", json=body, timeout=60
            )
            if reply.status_code != 409:
                reply.raise_for_status()
                return
        raise AssertionError(f"incident {name} changed under 20 saves of the analyst's label")

    # -- xdrsync ----------------------------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        """The workspace's hub, opened in this process (the service may run beside it)."""
        if self._hub is None:
            self._hub = Hub.open(configured_url(self.config.workspace))
        return self._hub

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "xdrsync", *args, "--config", str(self.config_file)]

    @staticmethod
    def environment() -> dict[str, str]:
        # A wide console so `destinations status` keeps each row on one line.
        return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", "NO_COLOR": "1"}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(),
            check=False,
        )

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()
            self._hub = None
        self.http.close()


@contextmanager
def open_world(
    folder: Path,
    defender_settings: EmulatorSettings,
    sentinel_settings: SentinelSettings,
    *,
    sync: SyncConfig,
    rate_limit_per_minute: int = 6000,
    two_way: bool = False,
) -> Iterator[World]:
    """Start both emulators and write ``folder/xdrsync.toml`` for them (the Sentinel entry as
    the emulator prints it, its secret in a file); ``rate_limit_per_minute`` is xdrsync's own
    pacing of Graph calls."""
    defender = EmulatorServer(defender_settings).start()
    sentinel: SentinelEmulatorServer | None = None
    world: World | None = None
    try:
        sentinel = SentinelEmulatorServer(sentinel_settings).start()
        config_file = write_client_config(
            folder,
            defender.base_url,
            defender_settings.tenants,
            workspace=folder / "ws",
            sync=sync.model_dump(),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        secret = folder / f"{SENTINEL}.secret"
        secret.write_text(sentinel.settings.client_secret + "\n")
        secret.chmod(0o600)
        entry = destination_toml(
            sentinel.settings, sentinel.base_url, name=SENTINEL, client_secret=f"file:{secret.name}"
        )
        if two_way:  # analysts' edits in Sentinel go back to Defender, read every second
            entry += "two_way = true\nreadback_interval_seconds = 1\n"
        config_file.write_text(config_file.read_text() + "\n" + entry)
        world = World(defender, sentinel, folder, config_file, load_config(config_file))
        yield world
    finally:
        if world is not None:
            world.close()
        if sentinel is not None:
            sentinel.stop()
        defender.stop()


# -- the checks --------------------------------------------------------------------------------


def label_names(incident: Mapping[str, Any]) -> list[str]:
    return [label["labelName"] for label in incident["properties"].get("labels") or []]


def assert_sentinel_matches_defender(
    world: World,
    defender_truth: list[dict[str, Any]],
    sentinel_truth: Mapping[str, Any],
    analyst_labels: Mapping[str, set[str]] | None = None,
) -> None:
    """Every Defender incident is in Sentinel exactly once (under its deterministic name),
    nothing else is, and each shows what the mapping makes of Defender's current state: the
    compared properties, every label xdrsync derives, and the labels analysts added."""
    held = Counter(i["name"] for i in sentinel_truth["incidents"])
    assert [name for name, n in held.items() if n > 1] == [], "an incident is held twice"
    expected = {
        incident_name(world.tenant_id, incident["id"]): desired_incident(
            Incident.from_graph(incident),
            tenant_id=world.tenant_id,
            tenant_name=world.tenant_name,
        )
        for incident in defender_truth
    }
    truth = {incident_name(world.tenant_id, i["id"]): i for i in defender_truth}
    missing = sorted(expected.keys() - held.keys())
    assert missing == [], f"{len(missing)} Defender incident(s) missing in Sentinel"
    extra = sorted(held.keys() - expected.keys())
    assert extra == [], f"{len(extra)} Sentinel incident(s) that Defender does not have"
    by_name = {i["name"]: i for i in sentinel_truth["incidents"]}
    for name, desired in expected.items():
        props = by_name[name]["properties"]
        shown = {key: props.get(key) for key in COMPARED}
        wanted = {key: desired.properties.get(key) for key in COMPARED}
        assert shown == wanted, (
            f"incident {truth[name]['id']} ({name}) differs: {shown} != {wanted}"
        )
        labels = {label.casefold() for label in label_names(by_name[name])}
        derived = {label.casefold() for label in desired.labels}
        assert derived <= labels, f"incident {name} lacks labels {derived - labels}"
        assert not (desired.retired_labels & labels), f"incident {name} keeps retired labels"
        kept = {label.casefold() for label in (analyst_labels or {}).get(name, set())}
        assert kept <= labels, (
            f"incident {truth[name]['id']} ({name}) lost the analyst's labels {kept - labels}; "
            f"Defender: status {truth[name].get('status')}, tags {truth[name].get('customTags')}"
            f"; tags in the hub's versions {_tag_history(world, truth[name]['id'])}"
        )


def _tag_history(world: World, incident_id: str) -> list[list[str]]:
    """The custom tags of each version of an incident the hub holds, oldest first."""
    return [
        list(version.payload.get("customTags") or ())
        for version in world.hub.incident_history(world.tenant_id, incident_id)
    ]


def alert_change_seqs(hub: Hub) -> set[int]:
    """Every alert change the hub recorded (its change numbers)."""
    seqs: set[int] = set()
    after = 0
    while changes := hub.changes_after(after, 5_000):
        seqs.update(c.seq for c in changes if c.entity_type == "alert")
        after = changes[-1].seq
    return seqs


def ingested_seqs(sentinel_truth: Mapping[str, Any]) -> list[int]:
    """``XdrSeq`` of every alert row Sentinel ingested, duplicates included."""
    return [int(row["XdrSeq"]) for row in sentinel_truth["logs"].get(ALERT_STREAM) or []]


def assert_every_alert_change_ingested(hub: Hub, sentinel_truth: Mapping[str, Any]) -> int:
    """Each alert change of the hub is in Sentinel's rows (at least once, since delivery is
    at least once; nothing else); returns how many rows were duplicates."""
    wanted = alert_change_seqs(hub)
    assert wanted, "the hub recorded no alert change"
    rows = ingested_seqs(sentinel_truth)
    missing = sorted(wanted - set(rows))
    assert missing == [], f"{len(missing)} alert change(s) never ingested, first {missing[:5]}"
    assert set(rows) <= wanted, "rows of changes the hub never recorded"
    return len(rows) - len(set(rows))


def assert_the_checks_can_fail(
    world: World,
    hub: Hub,
    defender_truth: list[dict[str, Any]],
    sentinel_truth: Mapping[str, Any],
    analyst_labels: Mapping[str, set[str]] | None = None,
) -> None:
    """The checks above notice what they are there for: Sentinel's truth with one incident
    missing, held twice, showing a stale status or without an analyst's label, and its rows
    without one alert change, each fails them."""
    incidents = sentinel_truth["incidents"]
    victim = min(analyst_labels) if analyst_labels else incidents[len(incidents) // 2]["name"]
    (index,) = [n for n, i in enumerate(incidents) if i["name"] == victim]

    def broken(change: Any) -> dict[str, Any]:
        copied = copy.deepcopy(dict(sentinel_truth))
        change(copied["incidents"])
        return copied

    def stale(held: list[dict[str, Any]]) -> None:
        props = held[index]["properties"]
        props["status"] = "Active" if props["status"] != "Active" else "New"

    def unlabelled(held: list[dict[str, Any]]) -> None:
        props = held[index]["properties"]
        props["labels"] = [
            label
            for label in props["labels"]
            if label["labelName"] not in (analyst_labels or {}).get(victim, set())
        ]

    damaged = {
        "missing": lambda held: held.pop(index),
        "held twice": lambda held: held.append(copy.deepcopy(held[index])),
        "differs": stale,
    }
    if analyst_labels:
        # Two way, an analyst's label is also a Defender tag, so a derived label goes too.
        damaged["lost the analyst's labels|lacks labels"] = unlabelled
    for message, change in damaged.items():
        with pytest.raises(AssertionError, match=message):
            assert_sentinel_matches_defender(world, defender_truth, broken(change), analyst_labels)
    seq = min(alert_change_seqs(hub))
    rows = copy.deepcopy(dict(sentinel_truth))
    rows["logs"][ALERT_STREAM] = [
        row for row in rows["logs"][ALERT_STREAM] if int(row["XdrSeq"]) != seq
    ]
    with pytest.raises(AssertionError, match="never ingested"):
        assert_every_alert_change_ingested(hub, rows)
