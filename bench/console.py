"""The console under load, measured from outside (issue figures: queue and incident page time
at 100,000 incidents, API throughput under concurrency, and ``xdrsync demo`` start → incidents
on the console).

1. A hub of N Graph-shaped incidents (2-5 alerts each, with evidence and some comments) in
   three tenants is built through the real path: ``Hub.commit_batch`` in large batches, then
   the console's queue index (``QueueIndex``) run over the change sequence. Building is timed;
   the hub file is cached by size beside the bench's scratch folders (the full size takes
   minutes), so a later run reuses it and says so. The console then serves that hub from its
   own process (``python -m bench.console --serve``: the real ``console_server``) and an
   authenticated client (a bearer token) times each kind of request: the wall time of the
   request on loopback, client included.
2. Throughput: 20 client threads, each with its own connection, send a mix of queue pages,
   incident details and statistics for a while; the same with one client, side by side.
3. ``xdrsync demo`` as a subprocess: from its start until the console, signed in through the
   login form as the printed user, lists a first incident.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from bench.harness import PYTHON, ROOT, dump, table
from xdrsync.config import Config
from xdrsync.console.accounts import Accounts
from xdrsync.console.index import QueueIndex
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.layout import HUB_FILE
from xdrsync.models import Incident

FULL: Final = 100_000
QUICK: Final = 5_000
#: Incidents per ``commit_batch`` while building (one tenant's at a time).
COMMIT_BATCH: Final = 1000
INDEX_BATCH: Final = 2000
TARGET_MS: Final = 200.0
TARGET_DEMO_SECONDS: Final = 30.0
BENCH_USER: Final = "bench-reader"
BENCH_PASSWORD: Final = "bench-password-not-secret"  # a throwaway local hub
#: Bumped whenever the generated data changes, so that a cached hub is never stale.
DATA_VERSION: Final = 2

TENANTS: Final = (
    ("contoso", "00000000-0000-0000-0000-00000000c001"),
    ("fabrikam", "00000000-0000-0000-0000-00000000f002"),
    ("northwind", "00000000-0000-0000-0000-00000000a003"),
)
BASE: Final = datetime(2026, 10, 1, tzinfo=UTC)
SPAN: Final = timedelta(days=60)  # last updates spread over this

SEVERITIES: Final = (("informational", 10), ("low", 30), ("medium", 35), ("high", 25))
STATUSES: Final = (("active", 30), ("inProgress", 15), ("resolved", 55))
OWNERS: Final = tuple(f"analyst{k}@contoso.com" for k in range(1, 9))
TAGS: Final = (("phish", 12), ("vip", 6), ("triage", 10), ("pentest", 3), ("ransomware", 2))
RARE_TAG: Final = "crown-jewels"  # on 1 incident in 2,000
PRODUCTS: Final = (
    ("microsoftDefenderForEndpoint", 50),
    ("microsoftDefenderForOffice365", 20),
    ("microsoftDefenderForIdentity", 15),
    ("microsoftDefenderForCloudApps", 10),
    ("azureAdIdentityProtection", 5),
)
RARE_PRODUCT: Final = "microsoftDefenderForCloudApps"
CATEGORIES: Final = (
    "Execution",
    "InitialAccess",
    "CredentialAccess",
    "LateralMovement",
    "Persistence",
    "DefenseEvasion",
    "Exfiltration",
)
VERBS: Final = (
    "Suspicious",
    "Malicious",
    "Unusual",
    "Anomalous",
    "Possible",
    "Multi-stage",
)
SUBJECTS: Final = (
    "PowerShell execution",
    "sign-in activity",
    "email messages removed after delivery",
    "credential dumping",
    "process injection",
    "inbox forwarding rule",
    "lateral movement using remote services",
    "ransomware behavior",
    "download of a file",
    "service installation",
)
COMMON_WORD: Final = "suspicious"  # in about a third of titles, and in alert titles
RARE_WORD: Final = "quokkaware"  # in the title of 1 incident in 5,000
RARE_EVERY: Final = 5000
RARE_TAG_EVERY: Final = 2000


def _pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 10:07d}Z"


def _evidence(rng: random.Random, n: int, moment: datetime) -> list[dict[str, Any]]:
    base = {"createdDateTime": _stamp(moment), "verdict": "suspicious", "remediationStatus": "none"}
    host = f"host-{rng.randrange(5000):04d}"
    user = f"user{rng.randrange(20000):05d}"
    items: list[dict[str, Any]] = [
        {
            **base,
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            "mdeDeviceId": f"mde-{host}",
            "deviceDnsName": f"{host}.contoso.com",
            "hostName": host,
        },
        {
            **base,
            "@odata.type": "#microsoft.graph.security.userEvidence",
            "userAccount": {
                "accountName": user,
                "domainName": "CONTOSO",
                "azureAdUserId": f"aad-{user}",
                "userPrincipalName": f"{user}@contoso.com",
                "displayName": user.title(),
            },
        },
        {
            **base,
            "@odata.type": "#microsoft.graph.security.ipEvidence",
            "ipAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        },
    ]
    return items[:n]


def incident_json(number: int, total: int, seed: int = 11) -> tuple[str, dict[str, Any]]:
    """(tenant_id, the Graph incident with its alerts): incident ``number`` of ``total``,
    the same for the same arguments."""
    rng = random.Random(seed * 1_000_003 + number)
    _name, tenant = TENANTS[number % len(TENANTS)]
    updated = BASE + SPAN * (number / total) + timedelta(seconds=rng.randrange(600))
    created = updated - timedelta(minutes=rng.randrange(5, 3 * 24 * 60))
    incident_id = str(100_000 + number)
    words = f"{rng.choice(VERBS)} {rng.choice(SUBJECTS)}"
    if number % RARE_EVERY == 7:
        words += f" ({RARE_WORD} loader)"
    severity = _pick(rng, SEVERITIES)
    status = _pick(rng, STATUSES)
    tags = sorted({_pick(rng, TAGS) for _ in range(rng.randrange(3))})
    if number % RARE_TAG_EVERY == 3:
        tags.append(RARE_TAG)
    owner = rng.choice(OWNERS) if rng.random() < 0.6 else None
    alerts = []
    for k in range(rng.randint(2, 5)):
        first = created + timedelta(minutes=rng.randrange(0, 120))
        last = first + timedelta(minutes=rng.randrange(0, 600))
        source = _pick(rng, PRODUCTS)
        comments = []
        if rng.random() < 0.1:
            comments.append(
                {
                    "comment": "Checked with the device owner; expected admin activity.",
                    "createdByDisplayName": "Ann Analyst",
                    "createdDateTime": _stamp(last),
                }
            )
        alerts.append(
            {
                "id": f"da{incident_id}_{k}",
                "incidentId": incident_id,
                "tenantId": tenant,
                "status": "resolved" if status == "resolved" else "new",
                "severity": severity,
                "serviceSource": source,
                "detectionSource": source,
                "productName": "Microsoft Defender",
                "category": rng.choice(CATEGORIES),
                "mitreTechniques": ["T1059.001"],
                "title": f"{rng.choice(VERBS)} {rng.choice(SUBJECTS)}",
                "description": "An alert of the bench's generated workspace.",
                "createdDateTime": _stamp(first),
                "lastUpdateDateTime": _stamp(min(updated, last + timedelta(minutes=5))),
                "firstActivityDateTime": _stamp(first),
                "lastActivityDateTime": _stamp(last),
                "alertWebUrl": f"https://security.microsoft.com/alerts/da{incident_id}_{k}",
                "comments": comments,
                "evidence": _evidence(rng, rng.randint(1, 3), first),
            }
        )
    comments = []
    if rng.random() < 0.2:
        comments.append(
            {
                "comment": f"Escalated to tier 2 ({rng.choice(OWNERS)}).",
                "createdByDisplayName": "Ann Analyst",
                "createdDateTime": _stamp(updated),
            }
        )
    return tenant, {
        "id": incident_id,
        "tenantId": tenant,
        "displayName": f"{words} on host-{rng.randrange(5000):04d}",
        "description": "An incident of the bench's generated workspace.",
        "severity": severity,
        "status": status,
        "classification": "unknown" if status != "resolved" else "falsePositive",
        "determination": "unknown" if status != "resolved" else "other",
        "assignedTo": owner,
        "customTags": tags,
        "systemTags": [],
        "comments": comments,
        "createdDateTime": _stamp(created),
        "lastUpdateDateTime": _stamp(updated),
        "redirectIncidentId": None,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}",
        "alerts": alerts,
    }


# -- building the workspace ----------------------------------------------------------------------


@dataclass
class Built:
    folder: Path
    incidents: int
    alerts: int
    commit_seconds: float
    index_seconds: float
    cached: bool
    hub_mib: float


def cache_folder(incidents: int) -> Path:
    """Where a built hub of ``incidents`` is kept between runs: beside the bench's scratch
    folders (``bench.scenarios.scratch`` makes those in the temporary directory)."""
    root = Path(tempfile.gettempdir()) / "xdrsync-bench-cache"
    return root / f"console-{incidents}-v{DATA_VERSION}"


def build_hub(folder: Path, incidents: int, *, log: Callable[[str], None] = print) -> Built:
    """``incidents`` committed through ``Hub.commit_batch`` (``COMMIT_BATCH`` at a time, each
    tenant's in turn), then the queue index run over the whole change sequence."""
    folder.mkdir(parents=True, exist_ok=True)
    hub = Hub.open(default_url(folder))
    alerts = 0
    try:
        started = time.perf_counter()
        pending: dict[str, list[Incident]] = {}
        for number in range(incidents):
            tenant, raw = incident_json(number, incidents)
            alerts += len(raw["alerts"])
            batch = pending.setdefault(tenant, [])
            batch.append(Incident.from_graph(raw))
            if len(batch) >= COMMIT_BATCH:
                hub.commit_batch(
                    InboundBatch(tenant_id=tenant, stream="incidents", incidents=batch)
                )
                pending[tenant] = []
            if number and number % 20_000 == 0:
                log(f"  committed {number:,} incidents, {time.perf_counter() - started:.0f} s")
        for tenant, batch in pending.items():
            if batch:
                hub.commit_batch(
                    InboundBatch(tenant_id=tenant, stream="incidents", incidents=batch)
                )
        commit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        DestinationRunner(hub, QueueIndex(hub), batch_size=INDEX_BATCH).publish(force=True)
        index_seconds = time.perf_counter() - started
        accounts = Accounts(hub)
        accounts.add_user(BENCH_USER, BENCH_PASSWORD, "reader", email="reader@contoso.com")
    finally:
        hub.close()
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
    return Built(folder, incidents, alerts, commit_seconds, index_seconds, False, size)


def cached_hub(incidents: int, *, log: Callable[[str], None] = print) -> Built:
    """The hub of ``incidents`` from the cache, built (and its build times kept) if absent."""
    folder = cache_folder(incidents)
    record = folder / "built.json"
    if record.exists():
        data = json.loads(record.read_text())
        size = (folder / HUB_FILE).stat().st_size / 2**20
        return Built(
            folder,
            incidents,
            int(data["alerts"]),
            float(data["commit_seconds"]),
            float(data["index_seconds"]),
            True,
            size,
        )
    if folder.exists():
        shutil.rmtree(folder)  # a build that did not finish
    built = build_hub(folder, incidents, log=log)
    dump(
        record,
        {
            "alerts": built.alerts,
            "commit_seconds": built.commit_seconds,
            "index_seconds": built.index_seconds,
        },
    )
    return built


# -- the console in its own process --------------------------------------------------------------


def bench_config(folder: Path) -> Config:
    """The three tenants (their Graph endpoint is never called: nothing syncs) and the
    workspace in ``folder``."""
    return Config.for_emulator(
        "http://127.0.0.1:9",
        [(name, tenant, f"client-{name}", "not-a-secret") for name, tenant in TENANTS],
        workspace_path=folder,
    )


SERVING: Final = "serving on "


def serve(folder: Path) -> None:
    """The console over the hub in ``folder`` (``console_server``, as ``xdrsync run`` starts
    it) on a free port: prints its URL, serves until stdin closes."""
    from xdrsync.console.server import console_server
    from xdrsync.workspace import Workspace

    with Workspace.open(bench_config(folder)) as workspace:
        server = console_server(workspace.config, workspace.hub, workspace.logs, port=0).start()
        print(f"{SERVING}{server.base_url}", flush=True)
        try:
            sys.stdin.read()
        finally:
            server.stop()


@dataclass
class Console:
    base_url: str
    process: subprocess.Popen[str]
    token: str

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )


@contextmanager
def console_process(folder: Path) -> Iterator[Console]:
    """``serve`` in its own process, and a fresh bearer token of the bench's reader."""
    hub = Hub.open(default_url(folder))
    try:
        token, _ = Accounts(hub).create_token(BENCH_USER, "bench")
    finally:
        hub.close()
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.console", "--serve", str(folder)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # the workspace's log lines come first
            seen.append(line)
            if line.startswith(SERVING):
                break
        else:
            raise RuntimeError("the console did not start:\n" + "".join(seen)[-2000:])
        yield Console(line.removeprefix(SERVING).strip(), process, token)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# -- 1. page times -----------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": float(len(ordered)),
        "p50": 1000 * statistics.median(ordered),
        "p95": 1000 * ordered[max(0, round(0.95 * len(ordered)) - 1)],
        "max": 1000 * ordered[-1],
    }


def _timed(http: httpx.Client, url: str, params: Any = None) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    reply = http.get(url, params=params)
    seconds = time.perf_counter() - started
    reply.raise_for_status()
    return seconds, reply


QUEUE: Final = "/api/v1/incidents"

#: (what, query parameters) for the queue's first page.
QUEUE_KINDS: Final[tuple[tuple[str, dict[str, str]], ...]] = (
    ("queue, first page (default sort `-lastUpdate`)", {}),
    ("filter status=active", {"status": "active"}),
    ("filter severity=high", {"severity": "high"}),
    ("filter tenant=fabrikam", {"tenant": "fabrikam"}),
    ("filter tag=phish (~30% of incidents)", {"tag": "phish"}),
    (f"filter tag={RARE_TAG} (1 in {RARE_TAG_EVERY:,})", {"tag": RARE_TAG}),
    ("filter product=microsoftDefenderForEndpoint (~90%)", {"product": PRODUCTS[0][0]}),
    (f"filter product={RARE_PRODUCT} (~30%)", {"product": RARE_PRODUCT}),
    ("filter owner=analyst3@contoso.com", {"owner": OWNERS[2]}),
    ("filter owner=unassigned", {"owner": "unassigned"}),
    (f"search `{COMMON_WORD}` (common)", {"search": COMMON_WORD}),
    (f"search `{RARE_WORD}` (1 in {RARE_EVERY:,})", {"search": RARE_WORD}),
    ("sort lastUpdate (ascending)", {"sort": "lastUpdate"}),
    ("sort -created", {"sort": "-created"}),
    ("sort -severity", {"sort": "-severity"}),
    ("sort -firstActivity", {"sort": "-firstActivity"}),
    ("sort -lastActivity", {"sort": "-lastActivity"}),
    ("sort -alertCount", {"sort": "-alertCount"}),
    (
        "status=active + severity=high + search `powershell`",
        {"status": "active", "severity": "high", "search": "powershell"},
    ),
)


def _workspace_id(number: int) -> str:
    return f"{TENANTS[number % len(TENANTS)][0]}~{100_000 + number}"


def page_times(console: Console, incidents: int, repeats: int) -> list[dict[str, Any]]:
    """Each kind of request ``repeats`` times (50 random incidents for the detail), after
    one untimed round of every kind (warm caches, as a console in use has them)."""
    rng = random.Random(5)
    sample = [_workspace_id(n) for n in rng.sample(range(incidents), 50)]
    results: list[dict[str, Any]] = []
    with console.client() as http:

        def record(what: str, seconds: list[float], note: str = "") -> None:
            results.append({"what": what, "note": note, **_ms(seconds)})

        def one_round(timed: bool) -> None:
            runs = repeats if timed else 1
            for what, params in QUEUE_KINDS:
                seconds, counts = [], set()
                for _ in range(runs):
                    took, reply = _timed(http, QUEUE, params)
                    seconds.append(took)
                    counts.add(len(reply.json()["value"]))
                if timed:
                    record(what, seconds, f"{max(counts)} incidents")
            seconds = []
            for _ in range(runs):
                reply = http.get(QUEUE)
                for _page in range(3):
                    reply = http.get(reply.json()["nextLink"])
                took, reply = _timed(http, reply.json()["nextLink"])
                seconds.append(took)
            if timed:
                record(
                    "queue page 5 via nextLink", seconds, f"{len(reply.json()['value'])} incidents"
                )
            seconds = []
            for _ in range(runs):
                took, reply = _timed(http, f"{QUEUE}/stats")
                seconds.append(took)
            if timed:
                record("GET /api/v1/incidents/stats", seconds, f"total {reply.json()['total']:,}")
            seconds = []
            for _ in range(runs):
                took, _reply = _timed(http, f"{QUEUE}/stats", {"status": "active"})
                seconds.append(took)
            if timed:
                record("GET /api/v1/incidents/stats?status=active", seconds)
            seconds = [
                _timed(http, f"{QUEUE}/{wid}")[0] for wid in sample[: len(sample) if timed else 3]
            ]
            if timed:
                record("GET /api/v1/incidents/{id} (50 random incidents)", seconds)
            seconds = [_timed(http, "/")[0] for _ in range(runs)]
            if timed:
                record("HTML `/` (the queue's shell)", seconds)
            seconds = [_timed(http, f"/incidents/{wid}")[0] for wid in sample[:runs]]
            if timed:
                record("HTML `/incidents/{id}` (the incident's shell)", seconds)

        one_round(timed=False)
        one_round(timed=True)
    return results


# -- 2. throughput -------------------------------------------------------------------------------


@dataclass
class Load:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors


#: The mix each client cycles through: the queue (as the page asks for it: a page and the
#: counts), and incidents opened from it.
MIX: Final = ("queue", "detail", "queue", "stats", "detail")


def throughput(console: Console, incidents: int, clients: int, seconds: float) -> Load:
    """``clients`` threads, each with its own connection, cycling through ``MIX`` for
    ``seconds``; latency of every answered request, errors counted (non-2xx or failed)."""
    load = Load(clients, seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker(k: int) -> None:
        rng = random.Random(100 + k)
        mine: list[tuple[str, float]] = []
        errors = 0
        with console.client(timeout=60) as http:
            start.wait()
            step = k  # clients start at different places in the mix
            while not stop.is_set():
                kind = MIX[step % len(MIX)]
                step += 1
                if kind == "queue":
                    url, params = QUEUE, dict(rng.choice(QUEUE_KINDS[:10])[1])
                elif kind == "stats":
                    url, params = f"{QUEUE}/stats", {}
                else:
                    url, params = f"{QUEUE}/{_workspace_id(rng.randrange(incidents))}", {}
                began = time.perf_counter()
                try:
                    reply = http.get(url, params=params)
                    ok = reply.is_success
                except httpx.HTTPError:
                    ok = False
                took = time.perf_counter() - began
                if ok:
                    mine.append((kind, took))
                else:
                    errors += 1
        with lock:
            load.errors += errors
            for kind, took in mine:
                load.latencies.append(took)
                load.by_kind.setdefault(kind, []).append(took)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    load.seconds = time.perf_counter() - began  # until the last request in flight ended
    return load


# -- 3. demo start → incidents on the console ----------------------------------------------------

CONSOLE_LINE: Final = re.compile(r"Console: (https?://\S+)\s+\(user (\S+), password (\S+)\)")


def demo_to_console(work: Path, duration: float = 90) -> dict[str, Any]:
    """``xdrsync demo`` from its start until the console lists an incident, signed in through
    the login form as the user the demo prints."""
    folder = work / "demo"
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}  # the console line on one line
    command = [str(ROOT / ".venv" / "bin" / "xdrsync"), "demo", "--duration", str(duration)]
    command += ["--workspace", str(folder), "--console-port", "0"]
    lines: list[str] = []
    printed = threading.Event()
    found: dict[str, Any] = {}
    began = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = CONSOLE_LINE.search(line)
            if match and not printed.is_set():
                found["at"] = time.perf_counter() - began
                found["url"], found["user"], found["password"] = match.groups()
                printed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result: dict[str, Any] = {"printed": float("nan"), "signed_in": float("nan")}
    try:
        if not printed.wait(timeout=120):
            raise RuntimeError("the demo printed no console line:\n" + "".join(lines)[-2000:])
        result["printed"] = found["at"]
        with httpx.Client(base_url=found["url"], timeout=30) as http:
            reply = http.post(
                "/login",
                data={"username": found["user"], "password": found["password"]},
                follow_redirects=False,
            )
            if reply.status_code != 303:
                raise RuntimeError(f"login refused: {reply.status_code} {reply.text[:200]}")
            result["signed_in"] = time.perf_counter() - began
            polls = 0
            while True:
                polls += 1
                listed = http.get(QUEUE)
                listed.raise_for_status()
                if listed.json()["value"]:
                    result["listed"] = time.perf_counter() - began
                    result["first_count"] = len(listed.json()["value"])
                    break
                if time.perf_counter() - began > duration - 5:
                    raise RuntimeError("the console listed no incident during the demo")
                time.sleep(0.25)
            result["polls"] = polls
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        reader.join(timeout=10)
        result["exit"] = process.returncode
    return result


# -- the scenario ----------------------------------------------------------------------------


def _f(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def console_bench(
    work: Path,
    *,
    quick: bool,
    incidents: int | None = None,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Every figure, as results.md sections (the first one titled ``### Console``)."""
    size = incidents or (QUICK if quick else FULL)
    repeats = 10 if quick else 20
    load_seconds = 8.0 if quick else 20.0
    load_average = os.getloadavg()[0]
    log(f"console: building (or reusing) a hub of {size:,} incidents")
    built = cached_hub(size, log=log)
    log(f"console: hub ready in {built.folder} ({'cached' if built.cached else 'built'})")
    with console_process(built.folder) as console:
        log("console: page times")
        pages = page_times(console, size, repeats)
        log("console: throughput")
        throughput(console, size, 4, 2)  # warm
        single = throughput(console, size, 1, load_seconds)
        many = throughput(console, size, 20, load_seconds)
    log("console: demo")
    demo = demo_to_console(work)
    dump(
        work / "console.json",
        {
            "pages": pages,
            "load": [
                {"clients": x.clients, "seconds": x.seconds, "errors": x.errors, **_ms(x.latencies)}
                for x in (single, many)
            ],
            "demo": demo,
            "built": built.__dict__ | {"folder": str(built.folder)},
        },
    )
    return render(built, pages, single, many, demo, repeats=repeats, load_average=load_average)


def render(
    built: Built,
    pages: list[dict[str, Any]],
    single: Load,
    many: Load,
    demo: dict[str, Any],
    *,
    repeats: int,
    load_average: float,
) -> list[str]:
    how = (
        f"reused from the cache ({built.folder}); its build, when it was made, took"
        if built.cached
        else "built in this run:"
    )
    sections = [
        "### Console\n\n"
        f"A hub of **{built.incidents:,} incidents** ({built.alerts:,} alerts, 1-3 evidence "
        f"items each; three tenants; hub file {built.hub_mib:,.0f} MiB), {how} "
        f"{built.commit_seconds:.0f} s of `Hub.commit_batch` ({COMMIT_BATCH:,} incidents a "
        f"batch) and {built.index_seconds:.0f} s of the queue index (`QueueIndex`, "
        f"{INDEX_BATCH:,} changes a batch): "
        f"{built.incidents / (built.commit_seconds + built.index_seconds):.0f} incidents/s. "
        "The console serves it from its own process (`console_server`, as `xdrsync run` "
        "starts it); the bench's client signs in with a bearer token. Load average "
        f"{load_average:.1f} when the scenario started (the machine is shared).\n"
    ]
    rows = []
    for r in pages:
        p95 = f"{_f(r['p95'])}"
        rows.append(
            [
                r["what"],
                int(r["n"]),
                _f(r["p50"]),
                f"**{p95}**" if r["p95"] >= TARGET_MS else p95,
                _f(r["max"]),
                r["note"],
            ]
        )
    slow = [r["what"] for r in pages if r["p95"] >= TARGET_MS]
    verdict = (
        f"Every kind under {TARGET_MS:.0f} ms at p95."
        if not slow
        else f"Over {TARGET_MS:.0f} ms at p95 (in bold): " + "; ".join(slow) + "."
    )
    sections.append(
        "#"
        + table(
            f"Server time per request, {built.incidents:,} incidents (target p95 < "
            f"{TARGET_MS:.0f} ms)",
            ["request", "n", "p50 ms", "p95 ms", "max ms", "answer"],
            rows,
        )
        + f"\nServer time is the wall time of the request on loopback as the client sees it "
        f"(connection kept alive, JSON decoding not included), after one untimed round of "
        f"every kind; {repeats} of each, 50 for the incident detail. {verdict}\n"
    )

    def load_row(load: Load) -> list[Any]:
        stats = _ms(load.latencies) if load.latencies else {"p50": 0.0, "p95": 0.0}
        kinds = {k: _ms(v)["p95"] for k, v in sorted(load.by_kind.items())}
        return [
            load.clients,
            f"{load.requests:,}",
            f"{load.requests / load.seconds:.1f}",
            _f(stats["p50"]),
            _f(stats["p95"]),
            ", ".join(f"{k} {_f(v)}" for k, v in kinds.items()),
            load.errors,
        ]

    ratio = (many.requests / many.seconds) / max(single.requests / single.seconds, 1e-9)
    sections.append(
        "#"
        + table(
            f"API throughput ({many.seconds:.0f} s per run; the mix: queue page ×2, incident "
            "detail ×2, stats ×1)",
            [
                "clients",
                "requests",
                "requests/s",
                "p50 ms",
                "p95 ms",
                "p95 ms by kind",
                "errors",
            ],
            [load_row(single), load_row(many)],
        )
        + f"\nThroughput, 20 clients ÷ 1 client: **{ratio:.2f}×**. Each client is a thread of "
        "the bench's process with its own kept-alive connection; the queue pages draw from "
        "the first ten kinds above.\n"
    )
    listed = demo.get("listed", float("nan"))
    mark = f"**{listed:.1f}**"
    sections.append(
        "#"
        + table(
            "`xdrsync demo` start → the console lists incidents (target < "
            f"{TARGET_DEMO_SECONDS:.0f} s)",
            ["measure", "seconds from the process's start"],
            [
                ["the `Console: ...` line printed", f"{demo['printed']:.1f}"],
                ["signed in (`POST /login` as the printed user)", f"{demo['signed_in']:.1f}"],
                [
                    "`GET /api/v1/incidents` lists incidents (polled every 0.25 s)",
                    mark,
                ],
            ],
        )
        + "\n`.venv/bin/xdrsync demo --duration 90 --workspace <scratch>/demo --console-port 0` "
        "as a subprocess, stopped with SIGINT once the list was non-empty "
        f"(first list: {demo.get('first_count', 0)} incidents; exit code {demo['exit']}).\n"
    )
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--incidents", type=int)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    from bench.scenarios import scratch

    for section in console_bench(scratch(), quick=args.quick, incidents=args.incidents):
        print(section, flush=True)


if __name__ == "__main__":
    main()
