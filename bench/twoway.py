"""Two-way sync, measured from outside: workspace edits → Defender, Defender edits → workspace,
and the Graph requests each workspace edit costs.

Edits are queued the way ``xdrsync incidents update`` queues them (``twoway.submit.submit`` on
the hub, which is SQLite and shared between processes), from this process, so CLI start-up is
not part of the figures; the emulator and xdrsync run as their own processes.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import PYTHON, Emulator, dump, emulator, run_xdrsync, table, write_config
from bench.scenarios import _epoch, _query, _token
from xdrsync.config import load_config
from xdrsync.hub import Hub, default_url
from xdrsync.hub.records import OutboxRow
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.submit import Tenant, submit

AUTHOR = "bench.user@contoso.com"
INCIDENT = "/v1.0/security/incidents/{incident_id}"
PATCH_ROUTE = f"PATCH {INCIDENT}"
COMMENT_ROUTE = f"POST {INCIDENT}/comments"
READ_ROUTE = f"GET {INCIDENT}"
KINDS = ("owner", "status", "tag", "comment", "classification")


@dataclass(frozen=True)
class Edit:
    """One workspace edit: the request, and how to tell it is in Defender's record."""

    incident: str
    kind: str
    request: EditRequest
    visible: Callable[[dict[str, Any]], bool]
    comment: str | None = None


@dataclass
class Workspace:
    config: Path
    hub: Hub
    tenant: Tenant

    @classmethod
    def open(cls, config: Path) -> Workspace:
        loaded = load_config(config)
        first = loaded.tenants[0]
        hub = Hub.open(default_url(loaded.workspace.path))
        return cls(config, hub, Tenant(first.name, first.tenant_id, loaded.writes_to(first)))

    def submit(self, edit: Edit) -> list[int]:
        return submit(
            self.hub,
            self.tenant,
            "incident",
            edit.incident,
            edit.request,
            author=AUTHOR,
            origin="bench",
        )

    def states(self, ids: Sequence[int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for start in range(0, len(ids), 400):
            for row in self.hub.edits(ids=ids[start : start + 400]):
                counts[row.state] = counts.get(row.state, 0) + 1
        return counts

    def rows(self, ids: Sequence[int]) -> list[OutboxRow]:
        return [r for s in range(0, len(ids), 400) for r in self.hub.edits(ids=ids[s : s + 400])]


def _make_edit(incident: dict[str, Any], kind: str, n: int) -> Edit:
    """One field (or one comment) of ``incident`` set to a value it does not have."""
    iid = str(incident["id"])
    if kind == "owner":
        owner = f"bench{n}@contoso.com"
        return Edit(iid, kind, EditRequest(owner=owner), lambda r: r.get("assignedTo") == owner)
    if kind == "status":
        status = "inProgress" if incident["status"] == "active" else "active"
        return Edit(iid, kind, EditRequest(status=status), lambda r: r.get("status") == status)
    if kind == "tag":
        tag = f"bench-{n}"
        return Edit(
            iid, kind, EditRequest(add_tags=(tag,)), lambda r: tag in (r.get("customTags") or ())
        )
    if kind == "classification":
        pair = (
            ("truePositive", "malware")
            if incident.get("classification") == "falsePositive"
            else ("falsePositive", "notMalicious")
        )
        return Edit(
            iid,
            kind,
            EditRequest(classification=pair[0], determination=pair[1]),
            lambda r: (r.get("classification"), r.get("determination")) == pair,
        )
    text = f"bench comment {n} on {iid}"
    return Edit(
        iid, kind, EditRequest(comment=text), lambda r: _comment_count(r, text) > 0, comment=text
    )


def _comment_count(record: dict[str, Any], text: str) -> int:
    return sum(1 for c in record.get("comments") or () if c.get("comment") == text)


def _editable(emu: Emulator) -> list[dict[str, Any]]:
    """Incidents an edit may touch (merged-away ones are refused up front), in id order."""
    found = [i for i in emu.truth() if str(i.get("status")).lower() != "redirected"]
    return sorted(found, key=lambda i: str(i["id"]))


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def _fill(config: Path) -> float:
    measured = run_xdrsync("sync", "--once", "--config", str(config))
    if measured.returncode != 0:
        raise RuntimeError(measured.output[-2000:])
    return measured.seconds


# -- 1 and 2: latency both ways with `xdrsync run` going --------------------------------------


@dataclass
class Analyst:
    """Portal edits (POST /_emulator/incidents/{id}) at a steady pace, in a thread."""

    emu: Emulator
    incidents: list[dict[str, Any]]
    spacing: float
    made: list[tuple[str, str]] = field(default_factory=list)  # (id, lastUpdateDateTime)
    failed: int = 0

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=30) as http:
            for n, incident in enumerate(self.incidents):
                time.sleep(max(0.0, started + n * self.spacing - time.monotonic()))
                kind = ("owner", "status", "tag")[n % 3]
                if kind == "owner":
                    body: dict[str, Any] = {"assignedTo": f"analyst{n}@contoso.com"}
                elif kind == "status":
                    body = {"status": "inProgress" if incident["status"] == "active" else "active"}
                else:
                    body = {"customTags": [*(incident.get("customTags") or ()), f"portal-{n}"]}
                reply = http.post(
                    f"{self.emu.base_url}/_emulator/incidents/{incident['id']}", json=body
                )
                if reply.status_code != 200:
                    self.failed += 1
                    continue
                self.made.append((str(incident["id"]), str(reply.json()["lastUpdateDateTime"])))


def _wait_for_banner(log: Path, service: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while "syncing" not in (log.read_text() if log.exists() else ""):
        if service.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"xdrsync run did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def both_ways(
    work: Path, *, incidents: int, edits: int, analyst_edits: int, spacing: float
) -> dict[str, Any]:
    """`xdrsync run` with default settings (poll 5 s, pusher 0.2 s, 120 Graph calls/min):
    workspace edits until Defender's record shows them, and portal edits until their version
    is a SecurityIncident row, at the same time."""
    out: dict[str, Any] = {"incidents": incidents, "spacing": spacing}
    with emulator("--incidents", str(incidents), "--activity", "0") as emu:
        # rate_limit_per_minute=None: the tenant's default budget, not the bench's 10,000.
        config = write_config(work / "twoway-live", emu, rate_limit_per_minute=None)
        out["fill_seconds"] = _fill(config)
        pool = _editable(emu)
        plan = [_make_edit(inc, KINDS[n % 4], n) for n, inc in enumerate(pool[:edits])]
        portal = pool[edits : edits + analyst_edits]
        if len(plan) < edits or len(portal) < analyst_edits:
            raise RuntimeError(f"only {len(pool)} editable incidents for {edits}+{analyst_edits}")
        workspace = Workspace.open(config)
        log = work / "twoway-live" / "run.log"
        with log.open("wb") as sink:
            service = subprocess.Popen(
                [PYTHON, "-m", "xdrsync", "run", "--config", str(config)],
                stdout=sink,
                stderr=sink,
            )
        try:
            _wait_for_banner(log, service)
            time.sleep(8)  # the first cycle of the service
            analyst = Analyst(emu, portal, spacing * edits / max(analyst_edits, 1))
            thread = threading.Thread(target=analyst.run, name="analyst", daemon=True)
            thread.start()
            out.update(_edit_and_watch(emu, workspace, plan, spacing))
            thread.join()
            time.sleep(20)  # the last portal edits reach the tables (target 15 s)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=120)
        out["outbox"] = workspace.states(out.pop("ids"))
        workspace.hub.close()
        t0 = time.perf_counter()
        reply = httpx.get(f"{emu.base_url}/_emulator/truth", timeout=300)
        out["truth_seconds"] = time.perf_counter() - t0
        out["truth_mb"] = len(reply.content) / 1e6
        truth = {str(i["id"]): i for i in reply.json()["value"]}
    out["in_truth"] = sum(1 for e in plan if e.visible(truth[e.incident]))
    comments = [e for e in plan if e.comment is not None]
    out["comments"] = len(comments)
    out["comments_once"] = sum(
        1 for e in comments if _comment_count(truth[e.incident], str(e.comment)) == 1
    )
    out["analyst_failed"] = analyst.failed
    rows = _query(
        config,
        "SecurityIncident | project ProviderIncidentId, LastModifiedTime, TimeGenerated, ModifiedBy",
    )
    versions: dict[str, list[tuple[float, float]]] = {}  # id -> (LastModifiedTime, TimeGenerated)
    newest: dict[str, tuple[float, str]] = {}
    for incident_id, modified, generated, modified_by in rows:
        stamp = _epoch(generated)
        versions.setdefault(str(incident_id), []).append((_epoch(modified), stamp))
        if stamp > newest.get(str(incident_id), (float("-inf"), ""))[0]:
            newest[str(incident_id)] = (stamp, str(modified_by))
    delays = []
    for incident_id, changed in analyst.made:
        at = _epoch(changed)
        seen = [g for m, g in versions.get(incident_id, ()) if abs(m - at) < 0.001]
        if seen:
            delays.append(min(seen) - at)
    out["inbound"] = {"made": len(analyst.made), "seen": len(delays), **_percentiles(delays)}
    echo: dict[str, list[int]] = {}  # kind -> [newest row by the editor, edits]
    for e in plan:
        counts = echo.setdefault(e.kind, [0, 0])
        counts[0] += newest.get(e.incident, (0.0, ""))[1] == AUTHOR
        counts[1] += 1
    out["echo"] = echo
    return out


def _edit_and_watch(
    emu: Emulator, workspace: Workspace, plan: list[Edit], spacing: float
) -> dict[str, Any]:
    """Queue each edit, then poll Defender's record of that incident every 50 ms (bounded)
    until it shows the wanted value. The record is read with GET /incidents/{id}, which the
    emulator answers from the same truth as /_emulator/truth: that one returns every incident
    (8.5 MB for 300 here, ~150 ms to build under the store's lock), too heavy to poll."""
    latencies: list[float] = []
    submits: list[float] = []
    by_kind: dict[str, list[float]] = {}
    missed = 0
    ids: list[int] = []
    with httpx.Client(timeout=30) as http:
        headers = {"Authorization": f"Bearer {_token(emu, http)}"}
        started = time.monotonic()
        for n, edit in enumerate(plan):
            time.sleep(max(0.0, started + n * spacing - time.monotonic()))
            t0 = time.perf_counter()
            ids += workspace.submit(edit)
            submits.append(time.perf_counter() - t0)
            deadline = t0 + 30
            while True:
                reply = http.get(
                    f"{emu.base_url}{INCIDENT.format(incident_id=edit.incident)}", headers=headers
                )
                reply.raise_for_status()
                if edit.visible(reply.json()):
                    seconds = time.perf_counter() - t0
                    latencies.append(seconds)
                    by_kind.setdefault(edit.kind, []).append(seconds)
                    break
                if time.perf_counter() > deadline:
                    missed += 1
                    break
                time.sleep(0.05)
    return {
        "ids": ids,
        "outbound": {
            "made": len(plan),
            "seen": len(latencies),
            "missed": missed,
            **_percentiles(latencies),
        },
        "by_kind": {k: _percentiles(v) | {"n": len(v)} for k, v in by_kind.items()},
        "submit_p50": statistics.median(submits),
    }


# -- 3: Graph requests per workspace edit -------------------------------------------------------


def _route_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    routes = set(before["by_route"]) | set(after["by_route"])
    diff = {r: after["by_route"].get(r, 0) - before["by_route"].get(r, 0) for r in routes}
    return {
        r: n
        for r, n in sorted(diff.items())
        if n and not r.split(" ", 1)[1].startswith("/_emulator")
    }


def requests_per_edit(
    work: Path, *, incidents: int, edits: int, idle_cycles: int, max_cycles: int = 20
) -> dict[str, Any]:
    """`xdrsync run` stopped: queue ``edits`` one-field edits on as many incidents, push them
    with `sync --once` until none is pending, then ``idle_cycles`` more cycles."""
    out: dict[str, Any] = {"edits": edits}
    with emulator("--incidents", str(incidents), "--activity", "0") as emu:
        config = write_config(work / "twoway-bulk", emu)
        out["fill_seconds"] = _fill(config)
        pool = _editable(emu)
        if len(pool) < edits:
            raise RuntimeError(f"only {len(pool)} editable incidents for {edits} edits")
        plan = [_make_edit(inc, KINDS[n % len(KINDS)], n) for n, inc in enumerate(pool[:edits])]
        workspace = Workspace.open(config)
        t0 = time.perf_counter()
        ids = [i for e in plan for i in workspace.submit(e)]
        out["queue_seconds"] = time.perf_counter() - t0
        out["queued"] = len(ids)
        out["kinds"] = {k: sum(1 for e in plan if e.kind == k) for k in KINDS}
        before = emu.stats()
        cycles: list[tuple[float, int]] = []  # (seconds, edits still pending after it)
        pending = len(ids)
        while pending and len(cycles) < max_cycles:
            seconds = _fill(config)
            pending = workspace.states(ids).get("pending", 0)
            cycles.append((seconds, pending))
        after = emu.stats()
        out["push_cycles"] = cycles
        out["push_routes"] = _route_diff(before, after)
        out["outbox"] = workspace.states(ids)
        idle_seconds = []
        for _ in range(idle_cycles):
            idle_seconds.append(_fill(config))
        idle = emu.stats()
        out["idle_routes"] = _route_diff(after, idle)
        out["idle_seconds"] = idle_seconds
        out["outbox_after_idle"] = workspace.states(ids)
        rows = workspace.rows(ids)
        workspace.hub.close()
        truth = {str(i["id"]): i for i in emu.truth()}
    out["in_truth"] = sum(1 for e in plan if e.visible(truth[e.incident]))
    comments = [e for e in plan if e.comment is not None]
    out["comments"] = len(comments)
    out["comments_once"] = sum(
        1 for e in comments if _comment_count(truth[e.incident], str(e.comment)) == 1
    )
    out["attempts_max"] = max((r.attempts for r in rows), default=0)
    return out


# -- tables ----------------------------------------------------------------------------------


def _s(value: float) -> str:
    return "not measured" if value != value else f"{value:.2f}"


def twoway(work: Path, *, quick: bool) -> list[str]:
    """Run the two-way scenario; returns its markdown: a heading with the date and the
    machine's load, then one table per part."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    when = datetime.now(UTC)
    live = both_ways(
        work,
        incidents=300,
        edits=20 if quick else 80,
        analyst_edits=10 if quick else 40,
        spacing=2.0,
    )
    bulk = requests_per_edit(
        work,
        incidents=260 if quick else 1100,
        edits=200 if quick else 1000,
        idle_cycles=3 if quick else 10,
    )
    total = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    dump(work / "twoway.json", {"live": live, "bulk": bulk, "seconds": total})
    sections = [
        "### Two-way sync\n\n"
        f"Run {when:%Y-%m-%d %H:%M} UTC, `python -m bench --only twoway{' --quick' if quick else ''}`, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} at start and "
        f"{load_after:.1f} at the end; took {total / 60:.1f} minutes. Edits are queued from the "
        "bench process with `twoway.submit.submit` (what `incidents update` calls), so CLI "
        "start-up is not in the figures.\n"
    ]
    o, i = live["outbound"], live["inbound"]
    kinds = live["by_kind"]
    sections.append(
        "#"  # a part of "Two-way sync"
        + table(
            "Latency both ways (`xdrsync run`, default settings: poll 5 s, pusher "
            "0.2 s, 120 Graph calls/min)",
            ["measure", "value"],
            [
                ["emulator incidents, live activity", f"{live['incidents']}, none"],
                [
                    "workspace edits (owner/status/tag/comment in turn, one incident each, "
                    f"one every {live['spacing']:g} s)",
                    f"{o['made']} ({o['seen']} seen, {o['missed']} not seen within 30 s)",
                ],
                ["workspace edit → Defender's record, p50 seconds", _s(o["p50"])],
                [
                    "workspace edit → Defender's record, p95 seconds (target ≤ 2)",
                    f"**{_s(o['p95'])}**",
                ],
                ["workspace edit → Defender's record, max seconds", _s(o["max"])],
                [
                    "p95 by kind",
                    ", ".join(f"{k} {_s(v['p95'])} (n={v['n']})" for k, v in sorted(kinds.items())),
                ],
                ["queueing an edit (submit, hub commit), p50 seconds", f"{live['submit_p50']:.3f}"],
                [
                    "in /_emulator/truth at the end; comments there exactly once",
                    f"{live['in_truth']}/{o['made']}; {live['comments_once']}/{live['comments']}",
                ],
                ["outbox states at the end", _states(live["outbox"])],
                [
                    "edited incidents whose newest SecurityIncident row has ModifiedBy = the editor",
                    ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(live["echo"].items())),
                ],
                [
                    "portal edits (POST /_emulator/incidents/{id}, at the same time)",
                    f"{i['made']} ({i['seen']} found as rows, {live['analyst_failed']} refused)",
                ],
                ["Defender edit → SecurityIncident row, p50 seconds", _s(i["p50"])],
                [
                    "Defender edit → SecurityIncident row, p95 seconds (target ≤ 15)",
                    f"**{_s(i['p95'])}**",
                ],
                ["Defender edit → SecurityIncident row, max seconds", _s(i["max"])],
            ],
        )
        + "\nAn edit is timed from `submit` until Defender's record shows it, polled every "
        "50 ms with `GET /incidents/{id}` (the emulator answers it from the same store as "
        f"`/_emulator/truth`, which returns all {live['incidents']} incidents, "
        f"{live['truth_mb']:.1f} MB in {live['truth_seconds'] * 1000:.0f} ms at the end of this "
        "run: too heavy to poll; it is read once at the end). A portal edit is timed from its "
        "`lastUpdateDateTime` to the `TimeGenerated` of the row of that version.\n"
    )
    routes = bulk["push_routes"]
    edits = bulk["edits"]
    writes = routes.get(PATCH_ROUTE, 0) + routes.get(COMMENT_ROUTE, 0)
    reads = routes.get(READ_ROUTE, 0)
    field_edits = edits - bulk["kinds"]["comment"]
    idle = bulk["idle_routes"]
    idle_writes = idle.get(PATCH_ROUTE, 0) + idle.get(COMMENT_ROUTE, 0)
    cycles = bulk["push_cycles"]
    sections.append(
        "#"
        + table(
            f"Graph requests per workspace edit ({edits:,} edits, `sync --once` "
            "with `run` stopped)",
            ["measure", "value"],
            [
                [
                    "edits queued (one field or one comment each, each on its own incident)",
                    f"{bulk['queued']:,} ({', '.join(f'{n} {k}' for k, n in bulk['kinds'].items())})",
                ],
                [
                    "`sync --once` cycles until none pending (pending after each)",
                    f"{len(cycles)} ({', '.join(str(p) for _, p in cycles)})",
                ],
                ["PATCH requests", routes.get(PATCH_ROUTE, 0)],
                ["comment POST requests", routes.get(COMMENT_ROUTE, 0)],
                ["GET of one incident", reads],
                ["**writes per edit** (target 1)", f"**{writes / edits:.3f}**"],
                [
                    "**reads per edit** (target ≤ 1); per field edit",
                    f"**{reads / edits:.3f}**; {reads / max(field_edits, 1):.3f}",
                ],
                [
                    "other Graph requests in those cycles (inbound listing, sign-in; not counted above)",
                    ", ".join(
                        f"{r} {n}"
                        for r, n in routes.items()
                        if r not in (PATCH_ROUTE, COMMENT_ROUTE, READ_ROUTE)
                    ),
                ],
                ["outbox states after the push", _states(bulk["outbox"])],
                [
                    "in /_emulator/truth; comments there exactly once",
                    f"{bulk['in_truth']:,}/{edits:,}; {bulk['comments_once']}/{bulk['comments']}",
                ],
                [
                    f"PATCH + comment requests over the next {len(bulk['idle_seconds'])} "
                    "`sync --once` cycles (target 0)",
                    f"**{idle_writes}**",
                ],
                [
                    "GET of one incident over those cycles",
                    idle.get(READ_ROUTE, 0),
                ],
                ["outbox states after them", _states(bulk["outbox_after_idle"])],
                [
                    "seconds: queueing the edits; each push cycle; each idle cycle (median)",
                    f"{bulk['queue_seconds']:.1f}; {', '.join(f'{s:.1f}' for s, _ in cycles)}; "
                    f"{statistics.median(bulk['idle_seconds']):.1f}",
                ],
            ],
        )
        + "\nThe pusher's Graph budget here is the bench's 10,000 calls/min (as in the backfill "
        "runs), so 2,000 calls do not take 17 minutes; counts do not depend on it.\n"
    )
    return sections


def _states(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


__all__ = ["both_ways", "requests_per_edit", "twoway"]
