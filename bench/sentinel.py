"""Microsoft Sentinel as a destination, measured from outside (issue 14).

The Defender emulator, the Sentinel emulator and ``xdrsync run`` are three processes on
127.0.0.1; ``xdrsync run`` has default settings (its config holds only the emulators' URLs and
credentials). Four figures, in two runs of the three processes:

1. Defender change → Sentinel incident, at steady live activity: every version of a Defender
   incident (its ``lastUpdateDateTime``, read from the Defender truth) is timed until the
   Sentinel truth shows that state: the managed properties and labels as xdrsync maps them
   (``mapping.desired_incident`` and ``differs``, the destination's own test) and at least as
   many comments. The Defender truth is read every second; Sentinel is read through ARM, as a
   client would (what changed since the last listing, every 0.5 s), because its truth carries
   every ingested row. The time taken is Sentinel's own write time (the incident's
   ``lastModifiedTimeUtc``, a comment's ``createdTimeUtc``), bounded by the poll that saw it.
   The same versions are timed into the workspace's SecurityIncident table from the rows'
   ``TimeGenerated``, side by side.
2. Sentinel requests per synced change over the same window, from the emulator's counts by
   route (less the bench's own reads) and the hub's change sequence.
3. An outage: the Sentinel emulator answers every ARM and ingestion call 500/503 for a while
   (``error_rate=1``) as Defender activity goes on, then heals; the backlog, how long until the
   destination's cursor is back at the hub's head of that moment, and the log tables' cursor
   during the outage.
4. A backfill: N incidents already in Defender, from ``xdrsync run``'s start until they are all
   in Sentinel, next to the log tables' time for the same backfill.
5. Sentinel edit → Defender, with ``two_way = true`` (the rest as default): an analyst takes an
   incident in Sentinel (status Active, an owner) through the emulator's control surface, one
   every few seconds; each is timed until the Defender truth (read every 0.5 s) shows it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import PYTHON, Emulator, dump, emulator, free_port, table
from bench.scenarios import _cpu_seconds, _epoch, _query
from xdrsync.config import Config, load_config
from xdrsync.destinations.sentinel.arm import API_VERSION as ARM_API_VERSION
from xdrsync.destinations.sentinel.mapping import Desired, desired_incident, differs
from xdrsync.destinations.status import destination_statuses
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.hub import Hub, configured_url
from xdrsync.layout import TABLES_DESTINATION
from xdrsync.models import Incident

POLL_SECONDS = 0.5
DEFENDER_EVERY = 2  # the Defender truth (7 MB for 250 incidents) every second poll: 1 s
ACTIVITY_PER_MINUTE = 120
LIVE_INCIDENTS = 200
STEADY_BEHIND = 20  # changes: the measured window starts with Sentinel this close
SENTINEL = "sentinel"  # the destination's name in the emulator's [[destinations]] block


# -- the Sentinel emulator, in its own process ---------------------------------------------------


@dataclass
class SentinelEmulator:
    base_url: str
    process: subprocess.Popen[bytes]
    http: httpx.Client

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get(f"{self.base_url}/_emulator/stats").json())

    def truth(self) -> tuple[dict[str, Any], int]:
        """The workspace (incidents with comments, ingested rows) and its size in bytes."""
        reply = self.http.get(f"{self.base_url}/_emulator/truth")
        reply.raise_for_status()
        return dict(reply.json()), len(reply.content)

    def config_block(self) -> str:
        reply = self.http.get(f"{self.base_url}/_emulator/config")
        reply.raise_for_status()
        return reply.text

    def faults(self, spec: str) -> None:
        self.http.post(f"{self.base_url}/_emulator/faults", content=spec).raise_for_status()


@contextmanager
def sentinel_emulator(log: Path, seed: int = 7) -> Iterator[SentinelEmulator]:
    """``xdrsync emulate sentinel`` in its own process."""
    port = free_port()
    command = [PYTHON, "-m", "xdrsync", "emulate", "sentinel", "--port", str(port)]
    command += ["--seed", str(seed)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(timeout=120)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                http.get(f"{base}/_emulator/stats", timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Sentinel emulator did not start") from None
                time.sleep(0.2)
        yield SentinelEmulator(base, process, http)
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def write_sentinel_config(folder: Path, emu: Emulator, sen: SentinelEmulator) -> Path:
    """The Defender tenant and the Sentinel workspace as the emulators give them; nothing
    else (default settings). Secrets in files beside the config, as the docs ask."""
    path = write_client_config(folder, emu.base_url, [emu.tenant])
    block = sen.config_block()
    secret = tomllib.loads(block)["destinations"][0]["client_secret"]
    secret_file = folder / "sentinel.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    block = re.sub(
        r'^client_secret = ".*"$', 'client_secret = "file:sentinel.secret"', block, flags=re.M
    )
    path.write_text(path.read_text() + "\n" + block)
    return path


@contextmanager
def service(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``xdrsync run`` in its own process; stopped with SIGTERM (its bounded drain)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", str(config), "--log-json"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@dataclass(frozen=True)
class Positions:
    head: int  # the hub's newest change
    tables: int
    sentinel: int
    error: str | None  # the Sentinel destination's last error, if failing


def positions(hub: Hub, config: Config) -> Positions:
    """What ``xdrsync destinations status`` shows, read the same way (from the hub)."""
    found = {s.name: s for s in destination_statuses(hub, config)}
    tables, sentinel = found[TABLES_DESTINATION], found[SENTINEL]
    return Positions(
        head=tables.position + tables.behind,
        tables=tables.position,
        sentinel=sentinel.position,
        error=sentinel.error,
    )


# -- Sentinel requests by kind -------------------------------------------------------------------

KINDS = (
    "incident GET",
    "comment list GET",
    "incident list GET",
    "incident PUT",
    "comment PUT",
    "ingestion POST",
    "sign-in",
    "other",
)


def _kind(route: str) -> str | None:
    method, _, path = route.partition(" ")
    if path.startswith("/_emulator"):
        return None
    if "oauth2" in path or "openid" in path:
        return "sign-in"
    if "dataCollectionRules" in path:
        return "ingestion POST"
    if method == "PUT":
        return "comment PUT" if "/comments/" in path else "incident PUT"
    if method == "GET" and path.rstrip("/").endswith("/comments"):
        return "comment list GET"
    if method == "GET" and path.rstrip("/").lower().endswith("/incidents"):
        return "incident list GET"
    if method == "GET":
        return "incident GET"
    return "other"


def calls_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Requests to the Sentinel emulator by kind between two ``/_emulator/stats`` readings."""
    counts = dict.fromkeys(KINDS, 0)
    for route, n in after["by_route"].items():
        kind = _kind(route)
        if kind is not None:
            counts[kind] += int(n) - int(before["by_route"].get(route, 0))
    return counts


def _reads(calls: dict[str, int]) -> int:
    return calls["incident GET"] + calls["comment list GET"] + calls["incident list GET"]


def _failed(before: dict[str, Any], after: dict[str, Any]) -> int:
    faults_after, faults_before = after.get("faults") or {}, before.get("faults") or {}
    return sum(int(n) - int(faults_before.get(k, 0)) for k, n in faults_after.items())


# -- reading Sentinel as a client does (ARM), for the latency ---------------------------------


class ArmReader:
    """The bench's own view of the Sentinel incidents, through ARM like any client: a listing
    of what changed since the last one (``$filter`` on ``lastModifiedTimeUtc``) every poll,
    and an incident's comments when asked. ``/_emulator/truth`` also returns every ingested row
    (tens of MB after a few minutes) under the store's lock: too heavy to poll. Its requests
    are counted (``calls``) to be taken out of the emulator's counts."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.http = httpx.Client(timeout=60)
        self.calls = dict.fromkeys(KINDS, 0)
        reply = self.http.post(
            f"{entry['authority_url']}/{entry['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": entry["client_id"],
                "client_secret": entry["client_secret"],
                "scope": f"{entry['arm_url']}/.default",
            },
        )
        reply.raise_for_status()
        self.calls["sign-in"] += 1
        self.headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        self.base = (
            f"{entry['arm_url']}/subscriptions/{entry['subscription_id']}/resourceGroups/"
            f"{entry['resource_group']}/providers/Microsoft.OperationalInsights/workspaces/"
            f"{entry['workspace']}/providers/Microsoft.SecurityInsights/incidents"
        )
        self.incidents: dict[str, dict[str, Any]] = {}  # name -> properties, as last listed
        self._since: float | None = None  # the newest lastModifiedTimeUtc listed

    def _pages(self, url: str, params: dict[str, str], kind: str) -> Iterator[dict[str, Any]]:
        next_url: str | None = url
        query: dict[str, str] | None = {"api-version": ARM_API_VERSION, **params}
        while next_url:
            reply = self.http.get(next_url, params=query, headers=self.headers)
            reply.raise_for_status()
            self.calls[kind] += 1
            body = reply.json()
            yield from body["value"]
            next_url, query = body.get("nextLink"), None

    def poll(self) -> None:
        params = {"$orderby": "properties/lastModifiedTimeUtc asc", "$top": "1000"}
        if self._since is not None:
            # Re-read a second before the newest time seen: a write that took its time just
            # before another's may commit after it.
            since = datetime.fromtimestamp(self._since - 1, UTC)
            params["$filter"] = f"properties/lastModifiedTimeUtc ge {since:%Y-%m-%dT%H:%M:%S.%fZ}"
        for item in self._pages(self.base, params, "incident list GET"):
            properties = item["properties"]
            self.incidents[item["name"]] = properties
            stamp = _epoch(properties["lastModifiedTimeUtc"])
            self._since = stamp if self._since is None else max(self._since, stamp)

    def comments(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(f"{self.base}/{name}/comments", {}, "comment list GET"))

    def close(self) -> None:
        self.http.close()


# -- following Defender versions into Sentinel ---------------------------------------------------


@dataclass
class Pending:
    incident_id: str
    changed: float  # the version's lastUpdateDateTime, epoch seconds
    desired: Desired
    comments: int  # Defender comments on this version
    needs_put: bool  # a managed property or label differs from the previous version
    needs_comment: bool


@dataclass
class Tracker:
    """Versions of Defender incidents, and when Sentinel first shows each one."""

    tenant_id: str
    tenant_name: str
    measure_from: float = float("inf")
    measure_until: float = float("inf")
    versions: dict[str, str] = field(default_factory=dict)
    signatures: dict[str, tuple[str, int]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    pending: dict[str, list[Pending]] = field(default_factory=dict)
    observed: list[tuple[str, float]] = field(default_factory=list)  # every measured version
    invisible: int = 0  # measured versions Sentinel shows no differently from the one before
    seen: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (incident, changed, by Sentinel's write time, by the poll that saw it)
    defender_lag: list[float] = field(default_factory=list)  # poll time - lastUpdateDateTime

    def desired(self, raw: dict[str, Any]) -> tuple[Desired, int]:
        incident = Incident.from_graph(raw)
        incident_id = str(raw["id"])
        earlier = self.tags.setdefault(incident_id, set())
        earlier.update(incident.custom_tags)
        made = desired_incident(
            incident,
            tenant_id=self.tenant_id,
            tenant_name=self.tenant_name,
            earlier_tags=earlier,
        )
        return made, len(raw.get("comments") or ())

    def defender(self, incidents: list[dict[str, Any]], now: float) -> None:
        for raw in incidents:
            incident_id = str(raw["id"])
            version = str(raw.get("lastUpdateDateTime"))
            known = self.versions.get(incident_id)
            if known == version:
                continue
            self.versions[incident_id] = version
            desired, comments = self.desired(raw)
            signature = (
                json.dumps(
                    [dict(desired.properties), sorted(x.casefold() for x in desired.labels)],
                    sort_keys=True,
                    default=str,
                ),
                comments,
            )
            before = self.signatures.get(incident_id)
            self.signatures[incident_id] = signature
            changed = _epoch(version)
            if not self.measure_from <= changed <= self.measure_until:
                continue
            self.observed.append((incident_id, changed))
            self.defender_lag.append(now - changed)
            if before == signature:
                self.invisible += 1
                continue
            self.pending.setdefault(incident_id, []).append(
                Pending(
                    incident_id,
                    changed,
                    desired,
                    comments,
                    needs_put=before is None or before[0] != signature[0],
                    needs_comment=before is None or before[1] != signature[1],
                )
            )

    def sentinel(self, arm: ArmReader, now: float) -> None:
        """Resolve the versions Sentinel now shows, from ``arm``'s latest listing (and the
        comments of an incident, read only when a version waits for one)."""
        for incident_id, waiting in self.pending.items():
            if not waiting:
                continue
            name = waiting[0].desired.name
            properties = arm.incidents.get(name)
            if properties is None:
                continue
            for k in range(len(waiting) - 1, -1, -1):
                if differs(properties, waiting[k].desired):
                    continue
                resolved = waiting[: k + 1]
                comments: list[dict[str, Any]] = []
                wanted = max((v.comments for v in resolved if v.needs_comment), default=0)
                if wanted:
                    comments = arm.comments(name)
                    if len(comments) < wanted:
                        continue
                for done in resolved:
                    written = _write_time(done, properties, comments)
                    at = min(written, now) if written is not None else now
                    self.seen.append(
                        (incident_id, done.changed, at - done.changed, now - done.changed)
                    )
                self.pending[incident_id] = waiting[k + 1 :]
                break

    def waiting(self) -> int:
        return sum(len(v) for v in self.pending.values())


def _write_time(
    version: Pending, properties: dict[str, Any], comments: list[dict[str, Any]]
) -> float | None:
    """When Sentinel wrote what this version needed: its PUT (the incident's
    lastModifiedTimeUtc) and its comment (the newest comment's createdTimeUtc), whichever came
    last; None when Sentinel's times do not tell (then the poll's time stands)."""
    times = []
    if version.needs_put:
        modified = properties.get("lastModifiedTimeUtc")
        if modified and _epoch(modified) >= version.changed:
            times.append(_epoch(modified))
        else:
            return None
    if version.needs_comment:
        created = [
            _epoch(c["properties"]["createdTimeUtc"])
            for c in comments
            if (c.get("properties") or {}).get("createdTimeUtc")
        ]
        newer = [t for t in created if t >= version.changed]
        if not newer:
            return None
        times.append(max(newer))
    return max(times) if times else None


def mismatches(tracker: Tracker, defender: list[dict[str, Any]], truth: dict[str, Any]) -> int:
    """Incidents the Sentinel truth does not show as Defender's truth says (comments too)."""
    held = {i["name"]: i for i in truth["incidents"]}
    wrong = 0
    for raw in defender:
        desired, comments = tracker.desired(raw)
        found = held.get(desired.name)
        if (
            found is None
            or differs(found["properties"], desired)
            or len(found.get("comments") or []) < comments
        ):
            wrong += 1
    return wrong


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


# -- 1-3: live activity, then an outage ----------------------------------------------------------


def live_and_outage(
    work: Path, *, minutes: float, outage_seconds: float, activity: int = ACTIVITY_PER_MINUTE
) -> dict[str, Any]:
    folder = work / "sentinel-live"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"minutes": minutes, "activity": activity, "incidents": LIVE_INCIDENTS}
    with (
        emulator("--incidents", str(LIVE_INCIDENTS), "--activity", str(activity)) as emu,
        sentinel_emulator(folder / "sentinel-emulator.log") as sen,
    ):
        config_path = write_sentinel_config(folder, emu, sen)
        config = load_config(config_path)
        hub = Hub.open(configured_url(config.workspace))
        tracker = Tracker(emu.tenant.tenant_id, emu.tenant.name)
        with service(config_path, folder / "run.log") as process, httpx.Client(timeout=120) as http:
            started = time.monotonic()
            out["warm_up_seconds"] = _warm_up(hub, config, started)

            def defender_truth() -> tuple[list[dict[str, Any]], int, float]:
                t0 = time.perf_counter()
                reply = http.get(f"{emu.base_url}/_emulator/truth")
                reply.raise_for_status()
                return list(reply.json()["value"]), len(reply.content), time.perf_counter() - t0

            # -- 1 and 2: a steady window --------------------------------------------------
            arm = ArmReader(tomllib.loads(sen.config_block())["destinations"][0])
            incidents, _, _ = defender_truth()
            tracker.defender(incidents, time.time())  # the baseline, not measured
            arm.poll()
            mine0 = dict(arm.calls)
            stats0, pos0, cpu0 = sen.stats(), positions(hub, config), _cpu_seconds(process.pid)
            window_start = time.time()
            tracker.measure_from = window_start
            defender_polls: list[tuple[int, float]] = []
            arm_polls: list[float] = []
            ticks = 0
            while time.time() < window_start + minutes * 60:
                tick = time.monotonic()
                if ticks % DEFENDER_EVERY == 0:
                    incidents, size, seconds = defender_truth()
                    tracker.defender(incidents, time.time())
                    defender_polls.append((size, seconds))
                t0 = time.perf_counter()
                arm.poll()
                tracker.sentinel(arm, time.time())
                arm_polls.append(time.perf_counter() - t0)
                ticks += 1
                time.sleep(max(0.0, tick + POLL_SECONDS - time.monotonic()))
            tracker.measure_until = time.time()
            stats1, pos1, cpu1 = sen.stats(), positions(hub, config), _cpu_seconds(process.pid)
            mine = {k: n - mine0[k] for k, n in arm.calls.items()}
            out["window_seconds"] = tracker.measure_until - window_start
            grace = time.monotonic() + 60
            while tracker.waiting() and time.monotonic() < grace:
                tick = time.monotonic()
                incidents, _, _ = defender_truth()
                tracker.defender(incidents, time.time())
                arm.poll()
                tracker.sentinel(arm, time.time())
                time.sleep(max(0.0, tick + POLL_SECONDS - time.monotonic()))
            arm.close()
            out["not_seen"] = tracker.waiting()
            out["bench_calls"] = mine
            out["calls"] = {k: n - mine[k] for k, n in calls_between(stats0, stats1).items()}
            out["hub_changes"] = pos1.head - pos0.head
            out["synced"] = pos1.sentinel - pos0.sentinel
            out["tables_synced"] = pos1.tables - pos0.tables
            out["behind_at_start"] = pos0.head - pos0.sentinel
            out["behind_at_end"] = pos1.head - pos1.sentinel
            out["by_type"] = _by_type(hub, pos0.sentinel, pos1.sentinel)
            out["cpu_per_minute"] = (cpu1 - cpu0) / (out["window_seconds"] / 60)
            out["observed"] = len(tracker.observed)
            out["invisible"] = tracker.invisible
            out["defender_lag"] = _percentiles(tracker.defender_lag)
            out["polls"] = len(arm_polls)
            out["arm_poll_ms"] = 1000 * statistics.mean(arm_polls)
            out["defender_truth_mb"] = statistics.mean(s[0] for s in defender_polls) / 1e6
            out["defender_truth_ms"] = 1000 * statistics.mean(s[1] for s in defender_polls)
            seen = [(i, c) for i, c, _, _ in tracker.seen]
            out["latency"] = _percentiles([w for _, _, w, _ in tracker.seen])
            out["latency_poll"] = _percentiles([p for _, _, _, p in tracker.seen])
            out["seen"] = len(seen)

            # -- 3: an outage ----------------------------------------------------------------
            out["outage"] = _outage(hub, config, sen, process.pid, outage_seconds)
            time.sleep(20)  # the last changes of the activity arrive
            incidents, _, _ = defender_truth()
            settled = [i for i in incidents if _epoch(i["lastUpdateDateTime"]) < time.time() - 30]
            out["outage"]["checked"] = len(settled)
            out["outage"]["mismatched"] = mismatches(tracker, settled, sen.truth()[0])
        hub.close()
    rows = _query(
        config_path,
        "SecurityIncident | project ProviderIncidentId, LastModifiedTime, TimeGenerated",
    )
    versions: dict[str, list[tuple[float, float]]] = {}  # id -> (LastModifiedTime, TimeGenerated)
    for incident_id, modified, generated in rows:
        versions.setdefault(str(incident_id), []).append((_epoch(modified), _epoch(generated)))
    tables = []
    for incident_id, changed in seen:
        found = [g for m, g in versions.get(incident_id, ()) if abs(m - changed) < 0.001]
        if found:
            tables.append(min(found) - changed)
    out["tables_latency"] = _percentiles(tables)
    out["tables_seen"] = len(tables)
    return out


def _warm_up(hub: Hub, config: Config, started: float) -> float:
    """Wait until the first backfill is in Sentinel: the hub holds the emulator's incidents
    and Sentinel's cursor has passed the hub's head of that moment."""
    deadline = started + 900
    head: int | None = None
    while time.monotonic() < deadline:
        held = sum(c.get("incidents", 0) for c in hub.counts().values())
        if head is None and held >= LIVE_INCIDENTS:
            head = positions(hub, config).head
        if head is not None and positions(hub, config).sentinel >= head:
            warm = time.monotonic() - started
            while time.monotonic() < deadline:  # then steady: at most a batch behind
                p = positions(hub, config)
                if p.head - p.sentinel <= STEADY_BEHIND:
                    return warm
                time.sleep(0.1)
        time.sleep(POLL_SECONDS)
    raise RuntimeError("the first backfill did not reach Sentinel within 15 minutes")


def _by_type(hub: Hub, after: int, upto: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    incidents: set[tuple[str, str]] = set()
    position = after
    while position < upto:
        changes = hub.changes_after(position, 500)
        if not changes:
            break
        for change in changes:
            if change.seq > upto:
                break
            counts[change.entity_type] = counts.get(change.entity_type, 0) + 1
            target = change.entity_id if change.entity_type == "incident" else change.incident_id
            if target:
                incidents.add((change.tenant_id, target))
        position = changes[-1].seq
    counts["incidents touched"] = len(incidents)
    return counts


def _outage(
    hub: Hub, config: Config, sen: SentinelEmulator, pid: int, seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": seconds}
    before = positions(hub, config)
    stats0 = sen.stats()
    sen.faults("error_rate=1")
    failed_at = time.monotonic()
    tables_behind: list[int] = []
    while time.monotonic() < failed_at + seconds:
        p = positions(hub, config)
        tables_behind.append(p.head - p.tables)
        time.sleep(POLL_SECONDS)
    at_heal = positions(hub, config)
    stats1 = sen.stats()
    cpu0 = _cpu_seconds(pid)
    sen.faults("error_rate=0")
    healed = time.monotonic()
    first: float | None = None
    caught: float | None = None
    deadline = healed + 900
    while time.monotonic() < deadline:
        p = positions(hub, config)
        now = time.monotonic()
        if first is None and p.sentinel > at_heal.sentinel:
            first = now - healed
        if p.sentinel >= at_heal.head:
            caught = now - healed
            break
        time.sleep(0.25)
    stats2 = sen.stats()
    out["cpu_seconds"] = _cpu_seconds(pid) - cpu0
    out["requests_failed"] = _failed(stats0, stats1)
    out["requests_during"] = sum(calls_between(stats0, stats1).values())
    out["calls_catch_up"] = calls_between(stats1, stats2)
    out["backlog"] = at_heal.head - at_heal.sentinel
    out["backlog_by_type"] = _by_type(hub, at_heal.sentinel, at_heal.head)
    out["hub_changes"] = at_heal.head - before.head
    out["tables_delivered"] = at_heal.tables - before.tables
    out["tables_behind_max"] = max(tables_behind, default=0)
    out["tables_behind_at_heal"] = at_heal.head - at_heal.tables
    out["sentinel_delivered"] = at_heal.sentinel - before.sentinel
    out["error"] = at_heal.error
    out["first_delivery"] = first if first is not None else float("nan")
    out["caught_up"] = caught if caught is not None else float("nan")
    return out


# -- 4: a backfill ---------------------------------------------------------------------------


def backfill_into_sentinel(work: Path, incidents: int) -> dict[str, Any]:
    """``xdrsync run`` from nothing against ``incidents`` in Defender (no activity)."""
    folder = work / f"sentinel-backfill-{incidents}"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"defender": incidents}
    with (
        emulator("--incidents", str(incidents), "--activity", "0") as emu,
        sentinel_emulator(folder / "sentinel-emulator.log") as sen,
    ):
        out["defender"] = len(emu.truth())
        config_path = write_sentinel_config(folder, emu, sen)
        config = load_config(config_path)
        hub = Hub.open(configured_url(config.workspace))  # migrated before the clock starts
        stats0 = sen.stats()
        samples: list[tuple[float, Positions, int, int]] = []
        started = time.monotonic()
        with service(config_path, folder / "run.log") as process:
            stable_since: float | None = None
            last_head = -1
            while time.monotonic() < started + 1800:
                p = positions(hub, config)
                held = sum(c.get("incidents", 0) for c in hub.counts().values())
                in_sentinel = int(sen.stats()["incidents"])
                now = time.monotonic() - started
                samples.append((now, p, held, in_sentinel))
                done = p.head > 0 and p.tables == p.head == p.sentinel and in_sentinel >= held
                if not done or p.head != last_head:
                    stable_since = None
                elif stable_since is None:
                    stable_since = now
                last_head = p.head
                if stable_since is not None and now - stable_since >= 15:
                    break
                time.sleep(POLL_SECONDS)
            else:
                raise RuntimeError("the backfill did not finish within 30 minutes")
            out["cpu_seconds"] = _cpu_seconds(process.pid)
        stats1 = sen.stats()
        hub.close()
    final, held = samples[-1][1], samples[-1][2]

    def first(test: Any) -> float:
        return next(t for t, p, h, s in samples if test(p, h, s))

    out["hub_incidents"] = held
    out["changes"] = final.head
    out["hub_seconds"] = first(lambda p, h, s: h >= held)
    out["tables_seconds"] = first(lambda p, h, s: p.tables >= final.head)
    out["sentinel_incidents_seconds"] = first(lambda p, h, s: s >= held)
    out["sentinel_seconds"] = first(lambda p, h, s: p.sentinel >= final.head)
    out["calls"] = calls_between(stats0, stats1)
    out["rows"] = stats1.get("log_rows", {})
    return out


def sentinel_to_defender(work: Path, edits: int, spacing: float = 3.0) -> dict[str, Any]:
    """Analysts' edits in Sentinel, timed until Defender shows them (two-way)."""
    folder = work / "sentinel-two-way"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"edits": edits}
    with (
        emulator("--incidents", str(3 * edits), "--activity", "0") as emu,
        sentinel_emulator(folder / "sentinel-emulator.log") as sen,
    ):
        config_path = write_sentinel_config(folder, emu, sen)
        config_path.write_text(config_path.read_text() + "two_way = true\n")
        with service(config_path, folder / "run.log"):
            deadline = time.monotonic() + 600
            while int(sen.stats()["incidents"]) < len(emu.truth()):  # all in Sentinel
                if time.monotonic() > deadline:
                    raise RuntimeError("the incidents did not reach Sentinel in 10 minutes")
                time.sleep(2)
            time.sleep(10)  # the readback's watermark is past the backfill's writes
            incidents = sen.truth()[0]["incidents"]
            fresh = [i for i in incidents if i["properties"].get("status") == "New"][:edits]
            out["edits"] = edits = len(fresh)
            stats0 = sen.stats()
            upn = "sam@contoso.com"
            pending: dict[str, float] = {}  # Defender incident id → when the analyst saved
            latencies: list[float] = []
            ids = {i["name"]: i for i in fresh}
            for defender_id, name in _defender_ids(emu, ids):
                owner = {"userPrincipalName": upn, "assignedTo": "Sam", "ownerType": "User"}
                sen.http.post(
                    f"{sen.base_url}/_emulator/incidents/{name}",
                    json={"status": "Active", "owner": owner},
                ).raise_for_status()
                pending[defender_id] = time.monotonic()
                next_edit = time.monotonic() + spacing
                while time.monotonic() < next_edit:
                    _collect(emu, pending, latencies, upn)
                    time.sleep(POLL_SECONDS)
            give_up = time.monotonic() + 120
            while pending and time.monotonic() < give_up:
                _collect(emu, pending, latencies, upn)
                time.sleep(POLL_SECONDS)
            out["calls"] = calls_between(stats0, sen.stats())
            out["window_seconds"] = edits * spacing
    out["latency"] = _percentiles(latencies)
    out["reached"] = len(latencies)
    return out


def _defender_ids(emu: Emulator, by_name: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(Defender incident id, Sentinel name) of the chosen Sentinel incidents."""
    from xdrsync.destinations.sentinel.mapping import incident_name

    tenant = emu.tenant.tenant_id
    names = {incident_name(tenant, i["id"]): i["id"] for i in emu.truth()}
    for name in by_name:
        yield names[name], name


def _collect(emu: Emulator, pending: dict[str, float], latencies: list[float], upn: str) -> None:
    now = time.monotonic()
    for incident in emu.truth():
        started = pending.get(incident["id"])
        shown = incident.get("assignedTo") == upn and incident.get("status") == "inProgress"
        if started is not None and shown:
            latencies.append(now - started)
            del pending[incident["id"]]


# -- tables ------------------------------------------------------------------------------------


def _s(value: float) -> str:
    return "not measured" if value != value else f"{value:.1f}"


def sentinel(work: Path, *, quick: bool) -> list[str]:
    """Run the Sentinel scenario; returns its markdown (a heading, then one table per part)."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    when = datetime.now(UTC)
    live = live_and_outage(work, minutes=1.5 if quick else 4, outage_seconds=20 if quick else 60)
    fill = backfill_into_sentinel(work, 200 if quick else 500)
    back = sentinel_to_defender(work, 10 if quick else 40)
    total = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    dump(
        work / "sentinel.json",
        {"live": live, "backfill": fill, "two_way": back, "seconds": total},
    )
    sections = [
        "### Sentinel destination\n\n"
        f"Run {when:%Y-%m-%d %H:%M} UTC, `python -m bench --only sentinel{' --quick' if quick else ''}`, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} at start and {load_after:.1f} "
        f"at the end; took {total / 60:.1f} minutes. The Defender emulator, the Sentinel "
        "emulator and `xdrsync run` are three processes on 127.0.0.1; the bench reads the "
        "Defender truth and Sentinel's ARM API from a fourth. `xdrsync run` has default "
        "settings: the config "
        "holds only the emulators' URLs and credentials (poll 5 s, Graph 120 calls/min; "
        "Sentinel ARM reads 1,200/min and writes 480/min, batches of 20 changes).\n"
    ]
    lat, poll, tab = live["latency"], live["latency_poll"], live["tables_latency"]
    sections.append(
        "#"
        + table(
            f"Defender change → Sentinel incident ({live['incidents']} incidents, "
            f"{live['activity']} changes/min, {live['window_seconds'] / 60:.1f} minutes)",
            ["measure", "value"],
            [
                [
                    "Defender incident versions in the window (its truth read every second)",
                    f"{live['observed']} ({live['invisible']} change nothing Sentinel shows)",
                ],
                [
                    "versions that change the Sentinel incident; seen there",
                    f"{live['observed'] - live['invisible']}; {live['seen']} "
                    f"({live['not_seen']} not within 60 s after the window)",
                ],
                ["→ Sentinel incident, p50 seconds", _s(lat["p50"])],
                ["→ Sentinel incident, p95 seconds (target ≤ 20)", f"**{_s(lat['p95'])}**"],
                ["→ Sentinel incident, max seconds", _s(lat["max"])],
                [
                    "the same, timed by the poll that saw it: p50; p95",
                    f"{_s(poll['p50'])}; {_s(poll['p95'])}",
                ],
                [
                    f"the same versions → SecurityIncident row (log tables, {live['tables_seen']} "
                    "found): p50; p95",
                    f"{_s(tab['p50'])}; {_s(tab['p95'])}",
                ],
                [
                    "p95 ratio, Sentinel ÷ log tables",
                    f"**{lat['p95'] / tab['p95']:.1f}×**" if tab["p95"] > 0 else "-",
                ],
                [
                    "warm-up: `xdrsync run` start → the first 200 incidents in Sentinel, seconds",
                    f"{live['warm_up_seconds']:.0f}",
                ],
                [
                    "`xdrsync run` CPU seconds per minute in the window",
                    f"{live['cpu_per_minute']:.1f}",
                ],
                [
                    "polls (means): Defender truth every 1 s, MB and ms; Sentinel ARM "
                    "listing every 0.5 s, ms",
                    f"{live['defender_truth_mb']:.1f} MB, {live['defender_truth_ms']:.0f} ms; "
                    f"{live['arm_poll_ms']:.0f} ms",
                ],
            ],
        )
        + "\nA version is timed from its `lastUpdateDateTime` in the Defender truth (read every "
        "second) to the first Sentinel state that shows it: the managed properties and labels "
        "as the destination compares them (`mapping.desired_incident`, `differs`) and at least "
        "as many comments. The bench reads Sentinel as a client does, through ARM (the incidents "
        "modified since its last listing, every 0.5 s, and an incident's comments when a "
        "version waits for one), since `/_emulator/truth` also carries every ingested row "
        "(tens of MB within minutes, built under the store's lock). The time "
        "is Sentinel's own write time (`lastModifiedTimeUtc`, the comment's `createdTimeUtc`) "
        "when it says it, else the poll's. A version overtaken by the next one before Sentinel "
        "showed it counts as seen when the next one is. The log tables' figure is the "
        "`TimeGenerated` of each version's SecurityIncident row.\n"
    )
    calls, changes = live["calls"], max(live["synced"], 1)
    bench = live["bench_calls"]
    by_type = live["by_type"]
    arm = sum(calls[k] for k in KINDS if k not in ("ingestion POST", "sign-in"))

    def per(n: int) -> str:
        return f"{n:,} ({n / changes:.2f})"

    sections.append(
        "#"
        + table(
            "Sentinel requests per synced change (the same window)",
            ["measure", "count (per synced change)"],
            [
                [
                    "Sentinel behind the hub at the window's start; at its end (changes)",
                    f"{live['behind_at_start']}; {live['behind_at_end']}",
                ],
                [
                    "hub changes in the window; delivered to Sentinel (cursor moved)",
                    f"{live['hub_changes']:,}; **{live['synced']:,}** "
                    f"({by_type.get('incident', 0)} incident, {by_type.get('alert', 0)} alert "
                    f"versions; {by_type['incidents touched']} incidents)",
                ],
                [
                    "ARM reads: incident GET, comment list GET, incident list GET",
                    f"{per(_reads(calls))}: {calls['incident GET']}, "
                    f"{calls['comment list GET']}, {calls['incident list GET']}",
                ],
                ["incident PUTs", per(calls["incident PUT"])],
                ["comment PUTs", per(calls["comment PUT"])],
                ["**ARM calls**", f"**{per(arm)}**"],
                [
                    "ARM calls per Defender incident version in the window",
                    f"{arm / max(live['observed'], 1):.2f}",
                ],
                ["ingestion POSTs", per(calls["ingestion POST"])],
                ["sign-in (token) requests", per(calls["sign-in"])],
                [
                    "the bench's own ARM reads in the window (taken out above): listings; "
                    "comment lists",
                    f"{bench['incident list GET']}; {bench['comment list GET']}",
                ],
            ],
        )
    )
    o = live["outage"]
    bt = o["backlog_by_type"]
    rate = o["backlog"] / o["caught_up"] if o["caught_up"] == o["caught_up"] else float("nan")
    work_rate = (
        o["backlog"] / (o["caught_up"] - o["first_delivery"])
        if o["caught_up"] == o["caught_up"] and o["caught_up"] > o["first_delivery"]
        else float("nan")
    )
    cu = o["calls_catch_up"]
    sections.append(
        "#"
        + table(
            f"Catch-up after a Sentinel outage ({o['seconds']:.0f} s of 500/503 on every ARM "
            f"and ingestion call, activity {live['activity']}/min going on)",
            ["measure", "value"],
            [
                [
                    "requests to Sentinel during the outage (answered with a fault)",
                    f"{o['requests_during']} ({o['requests_failed']})",
                ],
                ["changes the hub recorded during the outage", o["hub_changes"]],
                [
                    "log tables during the outage: changes delivered; most behind; behind at the end",
                    f"{o['tables_delivered']}; {o['tables_behind_max']}; {o['tables_behind_at_heal']}",
                ],
                [
                    "Sentinel's error in `destinations status` at the end",
                    f"`{o['error'] or 'none'}`",
                ],
                [
                    "**backlog** at heal (changes; incident / alert versions; incidents)",
                    f"**{o['backlog']}**; {bt.get('incident', 0)} / {bt.get('alert', 0)}; "
                    f"{bt['incidents touched']}",
                ],
                [
                    "heal → first delivery, seconds (the retry under way waits out its delay)",
                    _s(o["first_delivery"]),
                ],
                ["**heal → caught up**, seconds", f"**{_s(o['caught_up'])}**"],
                [
                    "changes/s from heal; from the first delivery",
                    f"{_s(rate)}; {_s(work_rate)}",
                ],
                [
                    "catch-up requests: incident GET, incident PUT, comment PUT, ingestion POST",
                    f"{cu['incident GET']}, {cu['incident PUT']}, {cu['comment PUT']}, "
                    f"{cu['ingestion POST']}",
                ],
                [
                    "incidents that Sentinel shows as Defender does, 20 s after (unchanged "
                    "for 30 s)",
                    f"{o['checked'] - o['mismatched']}/{o['checked']}",
                ],
            ],
        )
        + "\nCaught up: the Sentinel destination's cursor has reached the hub's head of the "
        "moment the faults stopped. The faults are the emulator's (`POST /_emulator/faults "
        "error_rate=1`); sign-in is never faulted.\n"
    )
    fc = fill["calls"]
    ratio = fill["sentinel_incidents_seconds"] / fill["tables_seconds"]
    sections.append(
        "#"
        + table(
            f"Backfill into Sentinel ({fill['defender']:,} incidents in Defender, no activity, "
            "`xdrsync run` from an empty workspace)",
            ["measure", "Sentinel", "log tables"],
            [
                [
                    "`xdrsync run` start → every incident there, seconds",
                    f"**{fill['sentinel_incidents_seconds']:.1f}**",
                    f"**{fill['tables_seconds']:.1f}**",
                ],
                [
                    "incidents/s",
                    f"{fill['hub_incidents'] / fill['sentinel_incidents_seconds']:.1f}",
                    f"{fill['hub_incidents'] / fill['tables_seconds']:.1f}",
                ],
                ["**ratio, Sentinel ÷ log tables**", f"**{ratio:.1f}×**", ""],
                [
                    "start → every change acknowledged (comments, alert rows too), seconds",
                    f"{fill['sentinel_seconds']:.1f}",
                    f"{fill['tables_seconds']:.1f}",
                ],
                [
                    "incidents in the hub (default 30-day backfill); changes; hub complete at, s",
                    f"{fill['hub_incidents']:,}; {fill['changes']:,}; {fill['hub_seconds']:.1f}",
                    "",
                ],
                [
                    "requests: incident GET, incident PUT, comment PUT, ingestion POST",
                    f"{fc['incident GET']}, {fc['incident PUT']}, {fc['comment PUT']}, "
                    f"{fc['ingestion POST']}",
                    "",
                ],
                [
                    "the bound of ARM write pacing (writes ÷ 8/s), seconds",
                    f"{(fc['incident PUT'] + fc['comment PUT']) / 8:.1f}",
                    "",
                ],
                [
                    "ARM writes per incident",
                    f"{(fc['incident PUT'] + fc['comment PUT']) / max(fill['hub_incidents'], 1):.2f}",
                    "",
                ],
            ],
        )
        + "\nBoth destinations are fed by the same `xdrsync run` from the same hub, on their own "
        "threads, timed from the process's start (the hub was created just before). The "
        "Sentinel destination paces its ARM writes at 480/min (8/s) by default.\n"
    )
    bl, bc = back["latency"], back["calls"]
    minutes = max(back["window_seconds"], 1) / 60
    sections.append(
        "#"
        + table(
            f"Sentinel edit → Defender (two_way = true, {back['edits']} analyst edits, "
            f"one every {back['window_seconds'] / max(back['edits'], 1):.0f} s)",
            ["measure", "value"],
            [
                ["edits that reached Defender", f"{back['reached']} of {back['edits']}"],
                [
                    "p50 / p95 / max, seconds (timed by a 0.5 s poll of the Defender truth)",
                    f"{_s(bl['p50'])} / **{_s(bl['p95'])}** / {_s(bl['max'])} (target p95 ≤ 20)",
                ],
                [
                    "Sentinel listing calls of the readback per minute",
                    f"{bc['incident list GET'] / minutes:.1f}",
                ],
            ],
        )
        + "\nThe readback lists Sentinel's incidents changed since its watermark every 5 s "
        "(`readback_interval_seconds`); the edit is queued in the outbox and pushed to Defender "
        "by the pusher (0.2 s).\n"
    )
    return sections


__all__ = ["backfill_into_sentinel", "live_and_outage", "sentinel"]
